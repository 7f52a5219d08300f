package engine_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoHostArithmetic enforces the rule of docs/engine.md: outside
// host.go (the counted transfers and host-drawn random tensors), package
// engine holds no float slice — its values live in device buffers — except
// as a parameter of an op that takes host constants and uploads them.
func TestNoHostArithmetic(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") || path == "host.go" {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		params := map[ast.Node]bool{} // float slices that are parameters
		ast.Inspect(f, func(n ast.Node) bool {
			if fd, ok := n.(*ast.FuncDecl); ok {
				for _, field := range fd.Type.Params.List {
					params[field.Type] = true
				}
			}
			return true
		})
		ast.Inspect(f, func(n ast.Node) bool {
			at, ok := n.(*ast.ArrayType)
			if !ok || at.Len != nil {
				return true
			}
			if id, ok := at.Elt.(*ast.Ident); ok && (id.Name == "float32" || id.Name == "float64") && !params[at] {
				t.Errorf("%s: a []%s outside host.go: tensor values belong in device buffers", fset.Position(at.Pos()), id.Name)
			}
			return true
		})
	}
}
