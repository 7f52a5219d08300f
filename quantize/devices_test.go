package quantize

// The tests build detectors with the engine, on the device $GIDEDGE_DEVICE
// names (cpu by default).
import _ "github.com/gidedge/gidedge/engine/devices"
