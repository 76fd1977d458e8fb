package cli

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
)

// grid is what a list command prints: a header and rows of cells, as
// aligned columns (-o table) or CSV (-o csv). JSON is printed from the
// messages themselves.
type grid struct {
	header []string
	rows   [][]string
}

func (g *grid) add(cells ...any) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = fmt.Sprint(c)
	}
	g.rows = append(g.rows, row)
}

// print writes g as a table or as CSV (RFC 4180, header first).
func (g *grid) print(w io.Writer, format string) error {
	if format == "csv" {
		cw := csv.NewWriter(w)
		if err := cw.Write(g.header); err != nil {
			return fmt.Errorf("write CSV: %w", err)
		}
		if err := cw.WriteAll(g.rows); err != nil {
			return fmt.Errorf("write CSV: %w", err)
		}
		return nil
	}
	t := newTable(w, g.header...)
	for _, r := range g.rows {
		t.row(toAny(r)...)
	}
	return t.flush()
}

// num formats a score or an amount with one decimal, "-" for none.
func num(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}
