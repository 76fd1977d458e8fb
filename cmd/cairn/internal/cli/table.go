package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
)

// table prints aligned columns.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(toAny(header)...)
	}
	return t
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func (t *table) row(cells ...any) {
	parts := make([]string, len(cells))
	for i, c := range cells {
		// Tabs and newlines in user data would break the columns.
		parts[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(fmt.Sprint(c))
	}
	fmt.Fprintln(t.tw, strings.Join(parts, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// ts formats a timestamp for tables, "-" when unset.
func ts(t *timestamppb.Timestamp) string {
	if t == nil || (t.GetSeconds() == 0 && t.GetNanos() == 0) {
		return "-"
	}
	return t.AsTime().UTC().Format("2006-01-02 15:04")
}

// tsDay formats a timestamp as its UTC date, "" when unset.
func tsDay(t *timestamppb.Timestamp) string {
	if t == nil || (t.GetSeconds() == 0 && t.GetNanos() == 0) {
		return ""
	}
	return t.AsTime().UTC().Format("2006-01-02")
}

// dur formats a duration coarsely (days and hours), "-" when unset.
func dur(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	return human(d.AsDuration())
}

func human(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	case d >= time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	case d >= time.Minute:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	default:
		return d.Round(time.Second).String()
	}
}

// enumName trims an enum's type prefix: SIGNAL_KIND_RISK -> risk.
func enumName(s fmt.Stringer, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), prefix))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// pageRequest builds the common page request from flags.
func pageRequest(size int, token string) *commonv1.PageRequest {
	if size == 0 && token == "" {
		return nil
	}
	return &commonv1.PageRequest{PageSize: int32(size), PageToken: token}
}

// nextPage tells table readers how to get the next page.
func nextPage(w io.Writer, p *commonv1.PageResponse) {
	if tok := p.GetNextPageToken(); tok != "" {
		fmt.Fprintf(w, "\nmore: --page-token %s\n", tok)
	}
}
