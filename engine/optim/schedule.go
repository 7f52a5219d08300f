package optim

import (
	"fmt"
	"math"
	"slices"
)

// Schedule gives the learning rate for a (zero-based) step. Schedules are
// pure functions of the step, so resuming needs only the step count.
type Schedule interface {
	LR(step int) float32
}

// Warmup ramps the rate linearly from Factor·lr at step 0 to lr at step
// Steps (detectron2's WarmupParamScheduler with linear warm-up).
type Warmup struct {
	Steps  int
	Factor float32 // starting fraction, e.g. 0.001
}

func (w Warmup) scale(step int) float32 {
	if step >= w.Steps || w.Steps <= 0 {
		return 1
	}
	alpha := float32(step) / float32(w.Steps)
	return w.Factor*(1-alpha) + alpha
}

func (w Warmup) validate() error {
	if w.Steps < 0 || w.Factor < 0 || w.Factor > 1 {
		return fmt.Errorf("optim: warm-up of %d steps from factor %v: want steps ≥ 0 and factor in [0, 1]", w.Steps, w.Factor)
	}
	return nil
}

// StepSchedule multiplies Base by Gamma at each milestone step, after a
// linear warm-up.
type StepSchedule struct {
	Base       float32
	Warmup     Warmup
	Milestones []int // ascending steps at which the rate drops
	Gamma      float32
}

// NewStepSchedule validates and returns a step schedule.
func NewStepSchedule(base float32, warmup Warmup, milestones []int, gamma float32) (*StepSchedule, error) {
	if err := warmup.validate(); err != nil {
		return nil, err
	}
	if !slices.IsSorted(milestones) {
		return nil, fmt.Errorf("optim: step schedule milestones %v must ascend", milestones)
	}
	if base < 0 || gamma <= 0 {
		return nil, fmt.Errorf("optim: step schedule base %v must be non-negative and gamma %v positive", base, gamma)
	}
	return &StepSchedule{Base: base, Warmup: warmup, Milestones: slices.Clone(milestones), Gamma: gamma}, nil
}

// LR implements Schedule.
func (s *StepSchedule) LR(step int) float32 {
	lr := float64(s.Base)
	for _, m := range s.Milestones {
		if step >= m {
			lr *= float64(s.Gamma)
		}
	}
	return float32(lr) * s.Warmup.scale(step)
}

// CosineSchedule decays from Base to Min along half a cosine over Total
// steps, after a linear warm-up, and stays at Min afterwards.
type CosineSchedule struct {
	Base, Min float32
	Warmup    Warmup
	Total     int
}

// NewCosineSchedule validates and returns a cosine schedule.
func NewCosineSchedule(base, minLR float32, warmup Warmup, total int) (*CosineSchedule, error) {
	if err := warmup.validate(); err != nil {
		return nil, err
	}
	if total <= 0 || base < 0 || minLR < 0 || minLR > base {
		return nil, fmt.Errorf("optim: cosine schedule of %d steps from %v to %v: want total > 0 and 0 ≤ min ≤ base", total, base, minLR)
	}
	return &CosineSchedule{Base: base, Min: minLR, Warmup: warmup, Total: total}, nil
}

// LR implements Schedule.
func (s *CosineSchedule) LR(step int) float32 {
	progress := min(float64(step)/float64(s.Total), 1)
	lr := float64(s.Min) + 0.5*float64(s.Base-s.Min)*(1+math.Cos(math.Pi*progress))
	return float32(lr) * s.Warmup.scale(step)
}
