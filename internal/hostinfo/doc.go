// Package hostinfo describes the machine a measurement ran on: the CPU's
// model name, its instruction-set flags (with the AVX-512 and VNNI checks
// that decide how 8-bit kernels behave), the board of an embedded device and
// the load average. It is the one place gidedge reads /proc/cpuinfo; the
// benchmark reports (bench engine, bench latency, the demo) and the
// quantizer's report all call it.
//
// The model name comes from the first of these /proc/cpuinfo keys that is
// present: "model name" (x86 and most arm64 kernels), "Model" (arm64 boards
// such as a Raspberry Pi or a Jetson), "Hardware" (older ARM kernels),
// "Processor" (32-bit ARM); failing all of them, the Go architecture name.
// Flags come from "flags" (x86) or "Features" (ARM) of the first processor.
//
// Nothing here fails: a missing or unreadable file leaves the field empty,
// since host information only annotates a report.
package hostinfo
