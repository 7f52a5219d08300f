// Package engine is gidedge's training engine: float32 tensors, reverse-mode
// automatic differentiation and the ops detectors are built from.
//
// Layout: tensors are dense, row-major, and image tensors are NCHW.
//
// Autograd: every op that has an input requiring gradients records a node
// holding its inputs and a backward function; Tensor.Backward walks the graph
// in reverse topological order and accumulates gradients into every tensor
// that requires them. Inside NoGrad nothing is recorded (inference, frozen
// teachers). Release returns a graph's intermediate buffers to a pool so a
// training step allocates little.
//
// Kernels run on the active backend (package backend); importing package
// engine selects the CPU backend by default.
//
// Errors: shape mismatches and other programmer errors inside ops panic with
// an *OpError naming the op and the shapes; Guard turns such a panic into an
// error at the one recover point, the command line's edge. NaN detection is
// offered by CheckFinite.
package engine
