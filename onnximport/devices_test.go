package onnximport

// The tests run on the device $GIDEDGE_DEVICE names (cpu by default);
// the Makefile runs them on ref as well.
import _ "github.com/gidedge/gidedge/engine/devices"
