// Command gidedge is the command-line entry point; see package cli.
package main

import (
	"os"

	"github.com/gidedge/gidedge/cli"
)

func main() { os.Exit(cli.Execute()) }
