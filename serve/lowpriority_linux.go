package serve

import (
	"runtime"
	"syscall"
)

// lowPriorityNice is how much nicer than the server large decodes run.
const lowPriorityNice = 10

// runLowPriority runs f on a fresh OS thread whose CPU priority is lowered
// (nice +10) and waits for it, so a large decode takes the CPU the normal
// requests and the model leave over instead of competing with them. The
// thread is never unlocked: it ends with the goroutine, since an
// unprivileged process cannot raise a thread's priority back.
func runLowPriority(f func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer close(done)
		if raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, 0); err == nil {
			nice := 20 - raw // the raw system call answers 20 - nice
			_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), min(nice+lowPriorityNice, 19))
		}
		f()
	}()
	<-done
}

// threadNice is the calling thread's nice value (tests).
func threadNice() (int, error) {
	raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	return 20 - raw, err
}
