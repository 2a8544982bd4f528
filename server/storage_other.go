//go:build !(linux || darwin || freebsd)

package server

import "errors"

// diskFree is not known here: MaxStore then defaults to 10 GiB.
func diskFree(string) (int64, error) {
	return 0, errors.New("free disk space unknown on this system")
}
