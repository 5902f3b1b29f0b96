// Package country knows the ISO 3166-1 alpha-2 country codes Beacon routes on.
//
// Beacon writes a country as its two-letter code in lower case ("ug", "ke"):
// that is the form in envelope headers, NATS subjects, the directory and the
// message kinds. [Known] is the one check every layer uses, so a code that
// one part accepts is never refused by another.
package country

import "sort"

// Known reports whether cc is an assigned ISO 3166-1 alpha-2 code written in
// lower case. Upper case, user-assigned (AA, QM–QZ, XA–XZ, ZZ) and reserved
// codes are not known.
func Known(cc string) bool {
	_, ok := names[cc]
	return ok
}

// Name returns the short English name of a known code, or "" if cc is not
// known.
func Name(cc string) string { return names[cc] }

// All returns every known code, sorted.
func All() []string {
	out := make([]string, 0, len(names))
	for cc := range names {
		out = append(out, cc)
	}
	sort.Strings(out)
	return out
}
