package backend

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// EnvDevice is the environment variable that names the default device when
// a program does not choose one.
const EnvDevice = "GIDEDGE_DEVICE"

// DefaultDevice is the device used when neither Use nor EnvDevice chose one.
const DefaultDevice = "cpu"

// ErrDevice is wrapped when a device name is unknown or its backend cannot
// be opened.
var ErrDevice = errors.New("backend: device not available")

var (
	mu        sync.Mutex
	registry  = map[string]func() (Backend, error){}
	absent    = map[string]string{} // known devices missing from this build, and why
	opened    = map[string]Backend{}
	openErrs  = map[string]error{}
	current   atomic.Pointer[Backend]
	defaultMu sync.Mutex
)

// Register makes a backend available under name. Drivers call it from
// init; registering a name twice panics.
func Register(name string, open func() (Backend, error)) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic(&Error{Backend: name, Kernel: "Register", Detail: "registered twice", Err: ErrArgument})
	}
	registry[name] = open
}

// Explain records why a known device is not in this build, for the error
// that lists the devices. A registered backend of that name wins.
func Explain(name, reason string) {
	mu.Lock()
	defer mu.Unlock()
	absent[name] = reason
}

// Device is one device name and whether this program can open it.
type Device struct {
	Name      string
	Available bool
	// Reason says why an unavailable device cannot be used.
	Reason string
}

// Devices lists the registered devices and the known absent ones, sorted
// by name. A registered device whose backend failed to open is listed as
// unavailable with the error.
func Devices() []Device {
	mu.Lock()
	defer mu.Unlock()
	var out []Device
	for name := range registry {
		d := Device{Name: name, Available: true}
		if err := openErrs[name]; err != nil {
			d.Available, d.Reason = false, err.Error()
		}
		out = append(out, d)
	}
	for name, why := range absent {
		if _, ok := registry[name]; !ok {
			out = append(out, Device{Name: name, Reason: why})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// describeDevices is the list that device errors end with:
// "available: cpu, ref; cuda: not in this build", leaving out the device
// named except (whose own error says why it failed).
func describeDevices(except string) string {
	var ok, missing []string
	for _, d := range Devices() {
		if d.Name == except {
			continue
		}
		if d.Available {
			ok = append(ok, d.Name)
		} else {
			missing = append(missing, d.Name+": "+d.Reason)
		}
	}
	s := "available: " + strings.Join(ok, ", ")
	if len(ok) == 0 {
		s = "no device is registered (import a driver such as github.com/gidedge/gidedge/engine/cpu)"
	}
	if len(missing) > 0 {
		s += "; " + strings.Join(missing, "; ")
	}
	return s
}

// Open returns the backend registered as name, opening it on first use;
// later calls return the same backend.
func Open(name string) (Backend, error) {
	mu.Lock()
	b, isOpen := opened[name]
	open, registered := registry[name]
	mu.Unlock()
	if isOpen {
		return b, nil
	}
	if !registered {
		return nil, fmt.Errorf("backend: unknown device %q (%s): %w", name, describeDevices(""), ErrDevice)
	}
	b, err := open()
	mu.Lock()
	if err != nil {
		openErrs[name] = err
		mu.Unlock()
		return nil, fmt.Errorf("backend: device %q cannot be opened: %v (%s): %w", name, err, describeDevices(name), ErrDevice)
	}
	if prev, ok := opened[name]; ok {
		b = prev // another goroutine opened it meanwhile
	} else {
		opened[name] = b
		delete(openErrs, name)
	}
	mu.Unlock()
	return b, nil
}

// Use opens the named backend and makes it the default for tensors created
// from now on.
func Use(name string) (Backend, error) {
	b, err := Open(name)
	if err != nil {
		return nil, err
	}
	current.Store(&b)
	return b, nil
}

// UseBackend makes b the default for tensors created from now on. b is an
// opened backend or a decorator around one (engine/profile's kernel
// timer); tensors made before keep the device they were made on.
func UseBackend(b Backend) {
	if b == nil {
		panic(&Error{Backend: "", Kernel: "UseBackend", Detail: "nil backend", Err: ErrArgument})
	}
	current.Store(&b)
}

// DefaultName is the device Default opens when Use was not called: the
// value of GIDEDGE_DEVICE, or "cpu".
func DefaultName() string {
	if name := strings.TrimSpace(os.Getenv(EnvDevice)); name != "" {
		return name
	}
	return DefaultDevice
}

// Default returns the backend new tensors live on: the one chosen by Use,
// else DefaultName's. It panics with a *Error when that device cannot be
// opened; programs call Use first to get the error instead.
func Default() Backend {
	if b := current.Load(); b != nil {
		return *b
	}
	defaultMu.Lock()
	defer defaultMu.Unlock()
	if b := current.Load(); b != nil {
		return *b
	}
	name := DefaultName()
	b, err := Open(name)
	if err != nil {
		panic(&Error{Backend: name, Kernel: "Default", Detail: fmt.Sprintf("cannot open the default device (%s); a program selects one with backend.Use and links the drivers by importing engine/devices", describeDevices("")), Err: ErrDevice})
	}
	current.Store(&b)
	return b
}
