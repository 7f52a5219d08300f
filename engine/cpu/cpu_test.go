package cpu_test

import (
	"fmt"
	"testing"

	"github.com/gidedge/gidedge/engine/backendtest"
	"github.com/gidedge/gidedge/engine/cpu"
)

func TestConformance(t *testing.T) {
	for _, workers := range []int{1, 2, 5} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) { backendtest.Run(t, cpu.New(workers)) })
	}
}
