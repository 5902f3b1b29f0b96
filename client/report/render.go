package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// A Report is the computed figures of a period, ready to write.
type Report struct {
	Since, Until, Generated time.Time
	Rows                    []Row
	Spreads                 []Spread
	Truncated               bool
}

// New computes the report of d at now.
func New(d *Data, rows []Row, spreads []Spread, now time.Time) *Report {
	return &Report{Since: d.Since, Until: d.Until, Generated: now, Rows: rows, Spreads: spreads, Truncated: d.Truncated}
}

// Formats are the forms Write knows.
var Formats = []string{"text", "csv", "json", "html"}

// Write writes r in format: text, csv, json or html.
func (r *Report) Write(w io.Writer, format string) error {
	switch format {
	case "text":
		return r.writeText(w)
	case "csv":
		return r.writeCSV(w)
	case "json":
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(r)
	case "html":
		return r.writeHTML(w)
	}
	return fmt.Errorf("report: unknown format %q (text, csv, json or html)", format)
}

func dur(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*v)
}

func (r *Report) writeText(w io.Writer) error {
	fmt.Fprintf(w, "Response report %s to %s (from relay metadata: ids, times, countries, priorities, acks; no content)\n\n",
		r.Since.UTC().Format(time.RFC3339), r.Until.UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "post\tcountry\tpriority\ttarget\treceived\tacknowledged\tmedian\tp90\ton time\tunacknowledged\toverdue")
	for _, x := range r.Rows {
		med, p90 := "-", "-"
		if x.Acknowledged > 0 {
			med, p90 = dur(x.Median), dur(x.P90)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%d\t%d\n", x.Mission, x.Country, x.Priority, dur(x.Target),
			x.Received, x.Acknowledged, med, p90, pct(x.OnTimeShare()), x.Unacknowledged, x.Overdue)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Spreads) > 0 {
		fmt.Fprintln(w, "\nConsistency across posts (best minus worst; 0 means posts answer alike):")
		tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "country\tpriority\tposts\ton-time spread\tmedian spread")
		for _, s := range r.Spreads {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f points\t%s\n", s.Country, s.Priority, s.Posts, 100*s.OnTime, dur(s.Median))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if r.Truncated {
		fmt.Fprintln(w, "\nnote: the relay stopped at its limit; ask for a shorter period")
	}
	return nil
}

func (r *Report) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"post", "country", "priority", "target_seconds", "received", "acknowledged", "median_seconds", "p90_seconds",
		"on_time", "due", "on_time_share", "unacknowledged", "overdue"})
	for _, x := range r.Rows {
		share := ""
		if v := x.OnTimeShare(); !math.IsNaN(v) {
			share = strconv.FormatFloat(v, 'f', 4, 64)
		}
		cw.Write([]string{x.Mission, x.Country, x.Priority.String(), secs(x.Target), strconv.Itoa(x.Received), strconv.Itoa(x.Acknowledged),
			secs(x.Median), secs(x.P90), strconv.Itoa(x.OnTime), strconv.Itoa(x.Due), share, strconv.Itoa(x.Unacknowledged), strconv.Itoa(x.Overdue)})
	}
	cw.Flush()
	return cw.Error()
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

// A chart is one country and priority: a bar per post.
type chart struct {
	Title  string
	Height int
	Bars   []bar
	Spread string
}

type bar struct {
	Y               int
	Post, Label     string
	Width, TargetX  float64
	Colour          string
	Median, Missing string
}

const chartWidth = 420.0

func (r *Report) charts() []chart {
	var out []chart
	idx := map[string]int{}
	for _, x := range r.Rows {
		k := x.Country + "/" + x.Priority.String()
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, chart{Title: fmt.Sprintf("%s, %s (target per post)", strings.ToUpper(x.Country), x.Priority)})
		}
		c := &out[i]
		b := bar{Y: 44 * len(c.Bars), Post: x.Mission}
		v := x.OnTimeShare()
		switch {
		case math.IsNaN(v):
			b.Label, b.Colour = "nothing due", "#9aa5b1"
		default:
			b.Width = chartWidth * v
			b.Label = fmt.Sprintf("%s on time of %d (target %s)", pct(v), x.Due, dur(x.Target))
			b.Colour = "#2f855a"
			if v < 0.9 {
				b.Colour = "#c05621"
			}
			if v < 0.5 {
				b.Colour = "#c53030"
			}
		}
		if x.Acknowledged > 0 {
			b.Median = "median " + dur(x.Median)
		}
		if x.Unacknowledged > 0 {
			b.Missing = fmt.Sprintf("%d unacknowledged", x.Unacknowledged)
		}
		c.Bars = append(c.Bars, b)
		c.Height = 44*len(c.Bars) + 4
	}
	for i := range out {
		for _, s := range r.Spreads {
			if fmt.Sprintf("%s, %s (target per post)", strings.ToUpper(s.Country), s.Priority) == out[i].Title {
				out[i].Spread = fmt.Sprintf("spread across %d posts: %.0f points on time, %s in median", s.Posts, 100*s.OnTime, dur(s.Median))
			}
		}
	}
	return out
}

var htmlPage = template.Must(template.New("report").Funcs(template.FuncMap{"dur": dur, "pct": pct}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Beacon response report</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;color:#1a202c;margin:2rem auto;max-width:70rem;padding:0 1rem}
h1{font-size:1.4rem;margin:0 0 .2rem} .sub{color:#4a5568;margin:0 0 1.5rem}
table{border-collapse:collapse;width:100%;margin:1rem 0 2rem} th,td{padding:.3rem .6rem;border-bottom:1px solid #e2e8f0;text-align:right}
th:nth-child(-n+3),td:nth-child(-n+3){text-align:left} th{background:#f7fafc;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(28rem,1fr));gap:1.5rem}
figure{margin:0;border:1px solid #e2e8f0;border-radius:6px;padding:.8rem} figcaption{font-weight:600;margin-bottom:.4rem}
.spread{color:#4a5568;font-size:.9rem;margin-top:.3rem} .warn{color:#c53030}
</style></head><body>
<h1>Beacon response report</h1>
<p class="sub">{{.Since.UTC.Format "2006-01-02 15:04"}} to {{.Until.UTC.Format "2006-01-02 15:04"}} UTC · from relay metadata only (ids, times, countries, priorities, acks), no content · generated {{.Generated.UTC.Format "2006-01-02 15:04"}} UTC</p>
{{if .Truncated}}<p class="warn">The relay stopped at its limit: ask for a shorter period.</p>{{end}}
<h2>Do posts answer alike?</h2>
<div class="charts">
{{range .Charts}}<figure><figcaption>{{.Title}}</figcaption>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 560 {{.Height}}" width="100%" role="img" aria-label="{{.Title}}">
{{range .Bars}}<g transform="translate(0,{{.Y}})"><text x="0" y="14" font-size="13" font-weight="600">{{.Post}}</text>
<rect x="120" y="2" width="420" height="16" rx="3" fill="#edf2f7"/><rect x="120" y="2" width="{{printf "%.1f" .Width}}" height="16" rx="3" fill="{{.Colour}}"/>
<text x="120" y="34" font-size="12" fill="#2d3748">{{.Label}}{{if .Median}} · {{.Median}}{{end}}{{if .Missing}} · {{.Missing}}{{end}}</text></g>
{{end}}</svg>
{{if .Spread}}<div class="spread">{{.Spread}}</div>{{end}}</figure>
{{end}}</div>
<h2>Figures</h2>
<table><thead><tr><th>post</th><th>country</th><th>priority</th><th>target</th><th>received</th><th>acknowledged</th><th>median</th><th>p90</th><th>on time</th><th>unacknowledged</th><th>overdue</th></tr></thead><tbody>
{{range .Rows}}<tr><td>{{.Mission}}</td><td>{{.Country}}</td><td>{{.Priority}}</td><td>{{dur .Target}}</td><td>{{.Received}}</td><td>{{.Acknowledged}}</td><td>{{if .Acknowledged}}{{dur .Median}}{{else}}-{{end}}</td><td>{{if .Acknowledged}}{{dur .P90}}{{else}}-{{end}}</td><td>{{pct .OnTimeShare}}</td><td>{{.Unacknowledged}}</td><td>{{.Overdue}}</td></tr>
{{end}}</tbody></table>
</body></html>
`))

func (r *Report) writeHTML(w io.Writer) error {
	return htmlPage.Execute(w, struct {
		*Report
		Charts []chart
	}{r, r.charts()})
}
