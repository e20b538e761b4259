package budget

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// MaxFileBytes bounds a budget file; a budget is a page of YAML.
const MaxFileBytes = 1 << 20

// Load reads and validates one budget file. The error, when not nil, is an
// Errors holding every finding with its position; warnings alone do not make
// Load fail and are returned by Lint.
func Load(path string) (*File, error) {
	files, errs := load([]string{path})
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return files[0], nil
}

// LoadDir reads every *.yaml and *.yml file in dir (not recursively) and
// checks them against each other: team names are unique.
func LoadDir(dir string) ([]*File, error) {
	files, errs := LoadPaths(dir)
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return files, nil
}

// LoadPaths reads the given files and directories, validates them alone and
// together, and returns every finding, warnings included. Files that had
// errors are left out of the result.
func LoadPaths(paths ...string) ([]*File, Errors) {
	var (
		names []string
		errs  Errors
	)
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Err: pathError(err)})
			continue
		}
		if !fi.IsDir() {
			names = append(names, p)
			continue
		}
		found, err := budgetFiles(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Err: pathError(err)})
			continue
		}
		if len(found) == 0 {
			errs = append(errs, &Error{File: p, Err: errors.New("no budget files (*.yaml, *.yml) in this directory")})
		}
		names = append(names, found...)
	}
	files, more := load(names)
	return files, append(errs, more...)
}

func budgetFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.Type().IsRegular() && (ext == ".yaml" || ext == ".yml") {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out)
	return out, nil
}

func pathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func load(names []string) ([]*File, Errors) {
	var (
		files   []*File
		errs    Errors
		teams   = map[string]*positioned{}
		streams = map[string]*positioned{}
	)
	for _, name := range names {
		f, fileErrs := loadFile(name)
		errs = append(errs, fileErrs...)
		if f == nil || fileErrs.HasErrors() {
			continue
		}
		if prev, ok := teams[f.Team]; ok {
			errs = append(errs, &Error{File: name, Line: f.teamLine, Column: f.teamCol, Field: "team",
				Err: fmt.Errorf("%q is already used by %s (team names are unique across budgets)", f.Team, prev.Path)})
			continue
		}
		teams[f.Team] = f
		// One team per stream: two consumers of one stream read it twice,
		// and their documents share _ids (made from stream and position),
		// so one team's would overwrite or shadow the other's.
		stream := f.StreamARN // streams of one name in other accounts or regions are other streams
		if stream == "" {
			stream = f.Stream
		}
		if prev, ok := streams[stream]; ok {
			errs = append(errs, &Error{File: name, Line: f.streamLine, Column: f.streamCol, Field: f.streamField,
				Err: fmt.Errorf("stream %q is already read by team %s (%s); a stream belongs to one team", stream, prev.Team, prev.Path)})
			continue
		}
		streams[stream] = f
		files = append(files, f.File)
	}
	errs = append(errs, checkClusters(files)...)
	errs.sort()
	return files, errs
}

// positioned keeps the team's position for cross-file errors.
type positioned struct {
	*File
	teamLine, teamCol     int
	streamField           string
	streamLine, streamCol int
}

func loadFile(name string) (*positioned, Errors) {
	fileErr := func(err error) (*positioned, Errors) {
		return nil, Errors{&Error{File: name, Err: err}}
	}
	fh, err := os.Open(name)
	if err != nil {
		return fileErr(pathError(err))
	}
	defer fh.Close()
	raw, err := readLimited(fh, MaxFileBytes)
	if err != nil {
		return fileErr(err)
	}
	switch {
	case len(bytes.TrimSpace(raw)) == 0:
		return fileErr(errors.New("file is empty; a budget needs at least team, stream, shards, budget and elasticsearch"))
	case !utf8.Valid(raw) || bytes.IndexByte(raw, 0) >= 0:
		return fileErr(errors.New("not a YAML text file (invalid UTF-8 or NUL bytes)"))
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		return nil, Errors{yamlError(name, err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, Errors{{File: name, Line: extra.Line, Column: extra.Column,
			Err: errors.New("a budget file holds one YAML document; found a second one")}}
	}
	p := &parser{file: name}
	f := p.file0(&doc)
	if f == nil {
		return nil, p.errs
	}
	f.Path = name
	f.Raw = raw
	return f, p.errs
}

func readLimited(fh *os.File, limit int64) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("file is over %d bytes; a budget file is a page of YAML", limit)
	}
	return raw, nil
}

// yamlError turns a yaml.v3 syntax error ("yaml: line 3: ...") into a
// positioned Error.
func yamlError(name string, err error) *Error {
	msg := err.Error()
	line := 0
	if rest, ok := strings.CutPrefix(msg, "yaml: line "); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if _, scanErr := fmt.Sscanf(rest[:i], "%d", &line); scanErr == nil {
				msg = rest[i+2:]
			}
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	e := &Error{File: name, Err: fmt.Errorf("invalid YAML: %s", msg)}
	if line > 0 {
		e.Line, e.Column = line, 1
	}
	return e
}
