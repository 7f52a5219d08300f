// Package engine is gidedge's training engine: tensors on a device,
// reverse-mode automatic differentiation and the ops detectors are built
// from.
//
// Layout: tensors are dense and row-major, and image tensors are NCHW.
// Their values live in a device's memory (a backend.Buffer); Go code reads
// and writes them only through the counted host transfers FromHost,
// ToHost, CopyFromHost, GradToHost and Item.
//
// Devices: every op's arithmetic is a kernel of the tensors' backend
// (package backend). The engine imports no driver: a program imports
// github.com/gidedge/gidedge/engine/devices (or a driver package such as
// engine/cpu) and new tensors go to backend.Default — the device chosen
// with backend.Use, else $GIDEDGE_DEVICE, else "cpu". This package keeps
// shapes, the autograd tape and errors, and does no arithmetic on values.
//
// Autograd: every op that has an input requiring gradients records a node
// holding its inputs and a backward function; Tensor.Backward walks the graph
// in reverse topological order and accumulates gradients into every tensor
// that requires them. Inside NoGrad nothing is recorded (inference, frozen
// teachers). Release hands a graph's intermediate buffers back to the
// device so a training step allocates little.
//
// Errors: shape mismatches and other programmer errors inside ops panic with
// an *OpError naming the op and the shapes, and kernels with a
// *backend.Error; Guard turns such a panic into an error at the one recover
// point, the command line's edge. NaN detection is offered by CheckFinite.
package engine
