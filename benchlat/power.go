package benchlat

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// PowerReading is the average board power and the highest temperature seen
// while a measurement ran.
type PowerReading struct {
	Watts    float64
	Celsius  float64
	HasPower bool
	HasTemp  bool
}

// PowerSource reads board power and temperature: from tegrastats when it is
// on the PATH (every Jetson), else from the INA3221 power monitor and the
// thermal zones in sysfs.
type PowerSource struct {
	// Name says where readings come from: "tegrastats" or "sysfs".
	Name      string
	tegrastat string // path of the tegrastats binary, if used
	sysRoot   string // "/" normally; tests point it at a fake tree
	interval  time.Duration
}

// DetectPower returns the power source of this machine, or nil when it has
// neither tegrastats nor power rails nor thermal zones (a typical cloud VM).
func DetectPower() *PowerSource { return detectPower("/", os.Getenv("PATH")) }

func detectPower(sysRoot, path string) *PowerSource {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, "tegrastats")
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return &PowerSource{Name: "tegrastats", tegrastat: p, sysRoot: sysRoot, interval: 100 * time.Millisecond}
		}
	}
	src := &PowerSource{Name: "sysfs", sysRoot: sysRoot, interval: 100 * time.Millisecond}
	if r := src.readSysfs(); r.HasPower || r.HasTemp {
		return src
	}
	return nil
}

type powerSampler struct {
	mu      sync.Mutex
	watts   []float64
	celsius float64
	hasTemp bool
	cancel  context.CancelFunc
	done    chan struct{}
}

func (s *powerSampler) add(r PowerReading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.HasPower {
		s.watts = append(s.watts, r.Watts)
	}
	if r.HasTemp && (!s.hasTemp || r.Celsius > s.celsius) {
		s.celsius, s.hasTemp = r.Celsius, true
	}
}

func (p *PowerSource) start() *powerSampler {
	ctx, cancel := context.WithCancel(context.Background())
	s := &powerSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if p.tegrastat != "" {
			p.runTegrastats(ctx, s)
			return
		}
		tick := time.NewTicker(p.interval)
		defer tick.Stop()
		for {
			s.add(p.readSysfs())
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

// stop ends sampling and returns the average power and peak temperature.
func (s *powerSampler) stop() PowerReading {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	r := PowerReading{Celsius: s.celsius, HasTemp: s.hasTemp}
	if len(s.watts) > 0 {
		var sum float64
		for _, w := range s.watts {
			sum += w
		}
		r.Watts, r.HasPower = sum/float64(len(s.watts)), true
	}
	return r
}

func (p *PowerSource) runTegrastats(ctx context.Context, s *powerSampler) {
	ms := strconv.Itoa(int(p.interval / time.Millisecond))
	cmd := exec.CommandContext(ctx, p.tegrastat, "--interval", ms)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return
	}
	if err := cmd.Start(); err != nil {
		return
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		s.add(ParseTegrastats(sc.Text()))
	}
	_ = cmd.Wait()
}

var (
	tegraTemp = regexp.MustCompile(`\b([A-Za-z0-9_]+)@(-?[0-9.]+)C\b`)
	// "VDD_IN 4979mW/4979mW" (JetPack 5/6) or "POM_5V_IN 2448/2448" (Nano).
	tegraRail = regexp.MustCompile(`\b([A-Z][A-Z0-9_]+) ([0-9]+)(?:mW)?/([0-9]+)(?:mW)?\b`)
)

// isInputRail names the rails that measure the whole module's input.
func isInputRail(name string) bool { return name == "VDD_IN" || name == "POM_5V_IN" }

// isCarrierRail names rails a module's monitor reports that feed the carrier
// board rather than the module: AGX Orin's VIN_SYS_5V0 powers the I/O ports
// (benchlat/testdata/tegrastats.txt cites the source). Modules without an
// input rail are summed without them.
func isCarrierRail(name string) bool { return name == "VIN_SYS_5V0" }

// isPlaceholderSensor names thermal sensors that report a constant instead of
// a temperature: the PMIC zone reads 100 C on Nano, TX2 and Xavier.
func isPlaceholderSensor(name string) bool { return strings.HasPrefix(strings.ToUpper(name), "PMIC") }

// ParseTegrastats reads one tegrastats line: board input power (VDD_IN or
// POM_5V_IN, else the sum of the module's rails) and the hottest thermal
// sensor. Sensors reporting -256C (switched off) and the PMIC placeholder are
// ignored.
func ParseTegrastats(line string) PowerReading {
	var r PowerReading
	for _, m := range tegraTemp.FindAllStringSubmatch(line, -1) {
		c, err := strconv.ParseFloat(m[2], 64)
		if err != nil || c <= -200 || isPlaceholderSensor(m[1]) {
			continue
		}
		if !r.HasTemp || c > r.Celsius {
			r.Celsius, r.HasTemp = c, true
		}
	}
	var total, sum float64
	for _, m := range tegraRail.FindAllStringSubmatch(line, -1) {
		if m[1] == "RAM" || m[1] == "SWAP" || m[1] == "IRAM" {
			continue
		}
		mw, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			continue
		}
		if isInputRail(m[1]) {
			total = mw
		}
		if !isCarrierRail(m[1]) {
			sum += mw
		}
		r.HasPower = true
	}
	if total > 0 {
		r.Watts = total / 1000
	} else {
		r.Watts = sum / 1000
	}
	return r
}

// readSysfs reads the INA3221 rails (hwmon in*_input mV x curr*_input mA
// on JetPack 5/6; iio in_power*_input mW on JetPack 4) and the thermal zones.
func (p *PowerSource) readSysfs() PowerReading {
	var r PowerReading
	root := p.sysRoot
	var total, sum float64
	hwmon, _ := filepath.Glob(filepath.Join(root, "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"))
	for _, dir := range hwmon {
		labels, _ := filepath.Glob(filepath.Join(dir, "in*_label"))
		for _, lf := range labels {
			n := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(lf), "in"), "_label")
			mv, err1 := readNumber(filepath.Join(dir, "in"+n+"_input"))
			ma, err2 := readNumber(filepath.Join(dir, "curr"+n+"_input"))
			if err1 != nil || err2 != nil {
				continue
			}
			w := mv * ma / 1e6
			label, _ := os.ReadFile(lf)
			name := strings.TrimSpace(string(label))
			if isInputRail(name) {
				total = w
			}
			if !isCarrierRail(name) {
				sum += w
			}
			r.HasPower = true
		}
	}
	iio, _ := filepath.Glob(filepath.Join(root, "sys/bus/i2c/drivers/ina3221x/*/iio:device*/in_power*_input"))
	for _, f := range iio {
		mw, err := readNumber(f)
		if err != nil {
			continue
		}
		idx := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "in_power"), "_input")
		name, _ := os.ReadFile(filepath.Join(filepath.Dir(f), "rail_name_"+idx))
		if isInputRail(strings.TrimSpace(string(name))) {
			total = mw / 1000
		}
		sum += mw / 1000
		r.HasPower = true
	}
	if total > 0 {
		r.Watts = total
	} else {
		r.Watts = sum
	}
	zones, _ := filepath.Glob(filepath.Join(root, "sys/class/thermal/thermal_zone*/temp"))
	for _, z := range zones {
		milli, err := readNumber(z)
		if err != nil || milli <= -200000 {
			continue
		}
		if kind, err := os.ReadFile(filepath.Join(filepath.Dir(z), "type")); err == nil && isPlaceholderSensor(strings.TrimSpace(string(kind))) {
			continue
		}
		if c := milli / 1000; !r.HasTemp || c > r.Celsius {
			r.Celsius, r.HasTemp = c, true
		}
	}
	return r
}

func readNumber(path string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
}
