// Package country knows the ISO 3166-1 alpha-2 country codes Beacon routes on.
//
// Beacon writes a country as its two-letter code in lower case ("ug", "ke"):
// that is the form in envelope headers, NATS subjects, the directory and the
// message kinds. [Known] is the one check every layer uses, so a code that
// one part accepts is never refused by another.
//
// # Which codes
//
// The 249 codes officially assigned in ISO 3166-1:2020, the standard's
// fourth edition. That set has not changed since South Sudan ("ss") was
// assigned on 2011-08-09; later amendments renamed countries, which only
// [Name] shows. User-assigned codes ("zz", "xk"), exceptionally reserved
// ones ("eu", "uk") and withdrawn ones are not known. The list is part of
// the envelope format: envelope/SPEC.md, "Country codes", prints it, and a
// test checks the two agree.
//
// # When ISO assigns a code
//
// Receivers refuse a code they do not know, so a new code is added here
// and in the spec, and relays and missions are upgraded before defenders
// use it. A code is never removed while envelope version 1 lives, even if
// ISO withdraws it: held envelopes, seen-sets and the directory may name
// it, and ISO reserves a withdrawn code for decades before reusing it.
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
// known. Names are for people to read; only the code is on the wire.
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
