package tune

import (
	"fmt"
	"os"
)

// Apply performs the report's run-time changes (root needed) and returns
// what it did; the first failure stops it and says which file.
func (h Host) Apply(r Report) ([]Write, error) {
	var done []Write
	for _, w := range r.Writes {
		if err := os.WriteFile(h.path(w.Path), []byte(w.Value+"\n"), 0); err != nil {
			return done, fmt.Errorf("tune: %s (%s): %w", w.Path, w.Why, err)
		}
		done = append(done, w)
	}
	return done, nil
}
