package distill

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/enginetest"
	"github.com/gidedge/gidedge/models"
)

// BenchmarkStep measures one training step (forward, loss, backward) of
// retinanet-student and faster-rcnn-student at 160×160, batch 8, without
// distillation and with each method against an untrained teacher of the
// same family, so the distillation overhead per step can be read off
// (gradients are computed, no optimizer update). It reports CPU time and
// host transfers per step beside wall time, on the device $GIDEDGE_DEVICE
// names:
//
//	go test ./distill/ -run - -bench Step -benchtime 5x
func BenchmarkStep(b *testing.B) {
	for _, family := range []string{"retinanet", "faster-rcnn"} {
		b.Run(family, func(b *testing.B) { benchmarkStep(b, family) })
	}
}

func benchmarkStep(b *testing.B, family string) {
	classes := []string{"a", "b", "c", "d", "e", "f"}
	build := func(name string, seed uint64) *models.Detector {
		cfg, err := models.Named(name)
		if err != nil {
			b.Fatal(err)
		}
		cfg = cfg.WithClasses(classes)
		cfg.Input.Size = 160
		d, err := models.New(cfg, seed)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	student, teacher := build(family+"-student", 1), build(family+"-teacher", 2)
	rng := rand.New(rand.NewPCG(5, 6))
	x := engine.RandN(rng, 1, 8, 3, 160, 160)
	targets := make([][]dataset.Target, 8)
	for i := range targets {
		for j := 0; j < 4; j++ {
			x1, y1 := rng.Float64()*120, rng.Float64()*120
			s := 8 + rng.Float64()*60
			targets[i] = append(targets[i], dataset.Target{Box: dataset.Box{X1: x1, Y1: y1, X2: min(x1+s, 160), Y2: min(y1+s, 160)}, Class: rng.IntN(6)})
		}
	}
	gid := DefaultOptions()
	methods := map[string]*Options{"student": nil, "gid": &gid}
	for _, m := range []string{MethodFitNet, MethodFineGrained, MethodResponseKD} {
		o := DefaultOptions()
		o.Method = m
		methods[m] = &o
	}
	for _, name := range []string{"student", "gid", MethodFitNet, MethodFineGrained, MethodResponseKD} {
		opts := methods[name]
		b.Run(name, func(b *testing.B) {
			var d *Distiller
			if opts != nil {
				var err error
				if d, err = New(NewDetectorTeacher(teacher, "teacher"), student, *opts, 1); err != nil {
					b.Fatal(err)
				}
			}
			step := func() error {
				out := student.Forward(x, true)
				loss, _, err := student.Loss(out, targets)
				if err != nil {
					return err
				}
				if d != nil {
					st, err := d.Step(context.Background(), x, out, targets)
					if err != nil {
						return err
					}
					loss = engine.Add(loss, st.Loss)
				}
				loss.Backward()
				loss.Release()
				return nil
			}
			// One untimed step first: the buffer pool and the priors cache
			// fill up on the first pass.
			if err := step(); err != nil {
				b.Fatal(err)
			}
			st0, cpu0 := engine.ReadStats(), enginetest.CPUTime()
			for b.Loop() {
				if err := step(); err != nil {
					b.Fatal(err)
				}
			}
			st1, n := engine.ReadStats(), float64(b.N)
			b.ReportMetric(float64((enginetest.CPUTime()-cpu0).Milliseconds())/n, "cpu-ms/op")
			b.ReportMetric(float64(st1.ToHostCalls-st0.ToHostCalls)/n, "to-host/op")
			b.ReportMetric(float64(st1.FromHostCalls-st0.FromHostCalls)/n, "from-host/op")
		})
	}
}
