package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/xlane/xlane/controller/te"
)

// readFile opens path and decodes it with parse; errors name the file.
func readFile[T any](path, what string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	v, err := parse(f)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func readTopology(path string) (*te.Topology, error) {
	return readFile(path, "topology", te.ParseTopology)
}

func readRequests(path string) ([]te.Request, error) {
	return readFile(path, "requests", te.ParseRequests)
}

func readTunnels(path string) ([]te.Tunnel, error) {
	return readFile(path, "tunnels", te.ParseTunnels)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writeJSONFile writes v to path atomically (temp file, then rename).
func writeJSONFile(path string, v any) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := writeJSON(f, v); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}
