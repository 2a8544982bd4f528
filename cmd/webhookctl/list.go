package main

import (
	"context"
	"flag"
)

// listFlags are the paging flags of list commands.
type listFlags struct {
	limit  int
	cursor string
	all    bool
}

func (l *listFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&l.limit, "limit", 0, "page size, 1..100 (default: the API's, 50)")
	fs.StringVar(&l.cursor, "cursor", "", "continue from this cursor")
	fs.BoolVar(&l.all, "all", false, "follow every page")
}

// lister is the shape every list command shares: connect, read one page
// or, with --all, every page, then print {"data": [...], "nextCursor"?}
// with --json, or a table of columns with the next cursor under it.
type lister[C, T any] struct {
	connect func(*env) (C, error) // (*env).tenant or (*env).admin
	// paged is the command's paging flags; nil for a list the API
	// answers whole, whose read is called once with no limit or cursor.
	paged *listFlags
	// read reads the page of limit items at cursor (zero values: the
	// API's default page, the first) and returns the next cursor.
	read    func(ctx context.Context, c C, args []string, limit int, cursor string) ([]T, string, error)
	columns []string
	row     func(T) []string // one item's cells, in the order of columns
}

// run is the command's run.
func (l lister[C, T]) run(ctx context.Context, e *env, args []string) error {
	c, err := l.connect(e)
	if err != nil {
		return err
	}
	read := func(ctx context.Context, limit int, cursor string) ([]T, string, error) {
		return l.read(ctx, c, args, limit, cursor)
	}
	var (
		all  []T
		next string
	)
	if l.paged != nil {
		all, next, err = pages(ctx, *l.paged, read)
	} else {
		all, next, err = read(ctx, 0, "")
	}
	if err != nil {
		return err
	}
	return e.showPage(all, next, func(w *table) {
		w.row(l.columns...)
		for _, v := range all {
			w.row(l.row(v)...)
		}
	})
}

// pages reads one page, or every page with --all.
func pages[T any](ctx context.Context, l listFlags, read func(ctx context.Context, limit int, cursor string) ([]T, string, error)) ([]T, string, error) {
	all := []T{}
	cursor := l.cursor
	for {
		page, next, err := read(ctx, l.limit, cursor)
		if err != nil {
			return nil, "", err
		}
		all = append(all, page...)
		if !l.all || next == "" {
			return all, next, nil
		}
		cursor = next
	}
}
