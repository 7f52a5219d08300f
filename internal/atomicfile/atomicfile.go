// Package atomicfile writes files so that a reader, or a process killed
// mid-write, sees either the old file or the complete new one: data goes to a
// temporary file in the same folder, is synced, and is renamed over the
// target; the folder is synced so the rename itself survives a crash.
//
// This package is the project's one writer of files that matter: every
// package calls it directly. Files are created 0644 (readable by a serving
// user or a container), the parent folder is created when missing.
//
// Errors are *fs.PathError values with Op "write" and the target path
// ("write runs/a/last.safetensors: sync: no space left on device"), so they
// read well as they are; callers return them unchanged or add context.
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write creates or replaces path with what fill writes. On any error the
// temporary file is removed and path is left untouched.
func Write(path string, fill func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return &fs.PathError{Op: "write", Path: path, Err: err}
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return &fs.PathError{Op: "write", Path: path, Err: err}
	}
	// The temporary file goes unless the rename happened, also when fill
	// panics (a device error while reading tensors).
	renamed := false
	defer func() {
		if !renamed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	fail := func(step string, cause error) error {
		return &fs.PathError{Op: "write", Path: path, Err: fmt.Errorf("%s%w", step, cause)}
	}
	bw := bufio.NewWriterSize(tmp, 1<<16)
	if err = fill(bw); err != nil {
		return fail("", err)
	}
	if err = bw.Flush(); err != nil {
		return fail("", err)
	}
	if err = tmp.Sync(); err != nil {
		return fail("sync: ", err)
	}
	if err = tmp.Close(); err != nil {
		return fail("close: ", err)
	}
	// CreateTemp makes the file 0600; results are meant to be shared.
	if err = os.Chmod(tmp.Name(), 0o644); err != nil {
		return fail("", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fail("rename: ", err)
	}
	renamed = true
	if d, derr := os.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// WriteFile creates or replaces path with data.
func WriteFile(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
