package demo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gidedge/gidedge/internal/atomicfile"
)

// ManifestFile is the file in the output folder that records finished
// stages.
const ManifestFile = "manifest.json"

// manifestVersion changes when the layout of records changes; a manifest of
// another version is ignored (every stage runs again).
const manifestVersion = 1

// Manifest records the finished stages of a demo folder.
type Manifest struct {
	Version int                     `json:"version"`
	Stages  map[string]*StageRecord `json:"stages"`
}

// StageRecord is one finished stage: what it was run with (Key), what it
// wrote (Outputs) and what it measured (Result, the stage's own JSON).
type StageRecord struct {
	Key      string          `json:"key"`
	Outputs  []FileDigest    `json:"outputs"`
	Result   json.RawMessage `json:"result"`
	Seconds  float64         `json:"seconds"`
	Finished time.Time       `json:"finished"`
}

// FileDigest identifies an output: a file, or a folder taken as the sorted
// list of its files (Files counts them, Bytes sums their sizes, SHA256
// hashes their relative names and contents).
type FileDigest struct {
	Path   string `json:"path"` // relative to the output folder, slash-separated
	Bytes  int64  `json:"bytes"`
	Files  int    `json:"files,omitempty"`
	SHA256 string `json:"sha256"`
}

// readManifest loads dir's manifest; a missing, unreadable or outdated one
// is an empty manifest (its stages are simply redone), and the reason is
// returned for the log.
func readManifest(dir string) (*Manifest, string) {
	empty := &Manifest{Version: manifestVersion, Stages: map[string]*StageRecord{}}
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return empty, ""
	}
	if err != nil {
		return empty, fmt.Sprintf("cannot read %s (%v); running every stage", ManifestFile, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return empty, fmt.Sprintf("%s is corrupt (%v); running every stage", ManifestFile, err)
	}
	if m.Version != manifestVersion {
		return empty, fmt.Sprintf("%s has version %d, want %d; running every stage", ManifestFile, m.Version, manifestVersion)
	}
	if m.Stages == nil {
		m.Stages = map[string]*StageRecord{}
	}
	return &m, ""
}

// write saves the manifest atomically.
func (m *Manifest) write(dir string) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("demo: manifest: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, ManifestFile), append(data, '\n'))
}

// valid reports whether the record still describes dir: same key and every
// output unchanged. The reason says what differs when it is not.
func (rec *StageRecord) valid(dir, key string) (bool, string) {
	if rec == nil {
		return false, "not run yet"
	}
	if rec.Key != key {
		return false, "settings or inputs changed"
	}
	for _, want := range rec.Outputs {
		got, err := digest(dir, want.Path)
		if err != nil {
			return false, fmt.Sprintf("output %s: %v", want.Path, err)
		}
		if got != want {
			return false, fmt.Sprintf("output %s changed", want.Path)
		}
	}
	return true, ""
}

// digest hashes a file or a folder (rel is relative to dir).
func digest(dir, rel string) (FileDigest, error) {
	path := filepath.Join(dir, filepath.FromSlash(rel))
	st, err := os.Stat(path)
	if err != nil {
		return FileDigest{}, err
	}
	d := FileDigest{Path: filepath.ToSlash(rel)}
	if !st.IsDir() {
		sum, n, err := hashFile(path)
		if err != nil {
			return FileDigest{}, err
		}
		d.Bytes, d.SHA256 = n, sum
		return d, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return FileDigest{}, err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		sum, n, err := hashFile(f)
		if err != nil {
			return FileDigest{}, err
		}
		name, _ := filepath.Rel(path, f)
		fmt.Fprintf(h, "%s\x00%d\x00%s\n", filepath.ToSlash(name), n, sum)
		d.Bytes += n
	}
	d.Files = len(files)
	d.SHA256 = hex.EncodeToString(h.Sum(nil))
	return d, nil
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// stageKey hashes what determines a stage's outputs: its id, its settings
// and the digests of the outputs of the stages it reads.
func stageKey(id string, settings any, inputs []FileDigest) (string, error) {
	data, err := json.Marshal(struct {
		Stage    string       `json:"stage"`
		Settings any          `json:"settings"`
		Inputs   []FileDigest `json:"inputs"`
	}{id, settings, inputs})
	if err != nil {
		return "", fmt.Errorf("demo: stage %s: key: %w", id, err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// relPath is path relative to dir with forward slashes, for manifest
// entries; paths outside dir are an error (a stage writes only inside).
func relPath(dir, path string) (string, error) {
	rel, err := filepath.Rel(dir, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("demo: output %s is outside the demo folder %s", path, dir)
	}
	return filepath.ToSlash(rel), nil
}
