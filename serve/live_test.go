package serve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// These tests run a real server on 127.0.0.1 with bounded request loops.

func TestLiveConcurrentRequests(t *testing.T) {
	// This test is about correctness under concurrency, not latency: a
	// generous deadline keeps a loaded machine under -race from turning
	// slow answers into 504s.
	s := newTestServer(t, Config{Sessions: 2, RequestTimeout: 2 * time.Minute})
	l := startLive(t, s, context.Background())
	jpg := personJPEG(t)
	var wg sync.WaitGroup
	var failures atomic.Int32
	for w := range 6 {
		wg.Go(func() {
			for i := range 4 {
				code, body, _, err := post(l.url, jpg)
				if err != nil || code != 200 || !strings.Contains(string(body), `"category":"person"`) {
					failures.Add(1)
					t.Errorf("worker %d request %d: %d %v %.200s", w, i, code, err, body)
				}
			}
		})
	}
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d of 24 concurrent requests failed", failures.Load())
	}
}

func TestLiveOverloadGives503(t *testing.T) {
	s := newTestServer(t, Config{Sessions: 1, QueueSize: -1}) // one running, none queued
	l := startLive(t, s, context.Background())
	jpg := personJPEG(t)
	var wg sync.WaitGroup
	var ok, busy, other atomic.Int32
	for range 24 {
		wg.Go(func() {
			code, _, header, err := post(l.url, jpg)
			switch {
			case err == nil && code == 200:
				ok.Add(1)
			case err == nil && code == 503 && header.Get("Retry-After") != "":
				busy.Add(1)
			default:
				other.Add(1)
				t.Errorf("unexpected reply %d %v", code, err)
			}
		})
	}
	wg.Wait()
	if ok.Load() == 0 || busy.Load() == 0 || other.Load() != 0 {
		t.Fatalf("ok %d, 503 %d, other %d: want some of each of the first two and no other", ok.Load(), busy.Load(), other.Load())
	}
	// Still healthy afterwards.
	if code, _, _, err := post(l.url, jpg); err != nil || code != 200 {
		t.Fatalf("after overload: %d %v", code, err)
	}
	_, metrics, _ := get(l.url + "/metrics")
	if !strings.Contains(string(metrics), fmt.Sprintf(`gidedge_requests_rejected_total{reason="overload"} %d`, busy.Load())) {
		t.Fatalf("rejections not counted; want %d", busy.Load())
	}
}

// slowPost starts a detect request whose body arrives in two halves; the
// second half is sent when the returned function is called.
func slowPost(t *testing.T, url string, img []byte) (finish func(), result <-chan error) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/detect", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(img))
	req.Header.Set("Content-Type", "image/jpeg")
	res := make(chan error, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			res <- err
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "person") {
			res <- fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
			return
		}
		res <- nil
	}()
	half := len(img) / 2
	if _, err := pw.Write(img[:half]); err != nil {
		t.Fatal(err)
	}
	return func() {
		_, _ = pw.Write(img[half:])
		_ = pw.Close()
	}, res
}

func TestLiveSIGTERMDrainsInFlight(t *testing.T) {
	s := newTestServer(t, Config{DrainTimeout: 15 * time.Second})
	ctx, stopSignals := HandleSignals(context.Background(), s)
	defer stopSignals()
	l := startLive(t, s, ctx)
	jpg := personJPEG(t)
	if code, _, _, err := post(l.url, jpg); code != 200 || err != nil {
		t.Fatalf("warm-up: %d %v", code, err)
	}
	finish, result := slowPost(t, l.url, jpg)
	// Wait until the server is reading that body.
	eventually(t, 5*time.Second, "request in flight", func() (bool, error) {
		_, m, err := get(l.url + "/metrics")
		return strings.Contains(string(m), "gidedge_http_in_flight_requests 2"), err // itself + the slow one
	})
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The listener closes: new connections are refused while the old one drains.
	addr := strings.TrimPrefix(l.url, "http://")
	eventually(t, 5*time.Second, "listener closed", func() (bool, error) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil, nil
	})
	select {
	case err := <-l.done:
		t.Fatalf("server stopped with a request in flight: %v", err)
	default:
	}
	finish()
	if err := <-result; err != nil {
		t.Fatalf("in-flight request during drain: %v", err)
	}
	select {
	case err := <-l.done:
		if err != nil {
			t.Fatalf("Serve returned %v after a clean drain", err)
		}
		l.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("server did not stop after draining")
	}
}

func TestLiveHotReloadUnderTraffic(t *testing.T) {
	s := newTestServer(t, Config{Sessions: 2})
	ctx, stopSignals := HandleSignals(context.Background(), s)
	defer stopSignals()
	l := startLive(t, s, ctx)
	jpg := personJPEG(t)

	var wg sync.WaitGroup
	var sent, failed atomic.Int32
	stop := make(chan struct{})
	for range 3 {
		wg.Go(func() {
			for i := 0; i < 200; i++ { // bounded even if stop never comes
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				code, body, _, err := post(l.url, jpg)
				if err != nil || code != 200 {
					failed.Add(1)
					t.Errorf("request during reload: %d %v %.200s", code, err, body)
				}
			}
		})
	}
	for i := range 4 {
		time.Sleep(40 * time.Millisecond)
		if i == 2 {
			if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			continue
		}
		resp, err := client.Post(l.url+"/v2/repository/models/nanodet_m_320/load", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("load: %d", resp.StatusCode)
		}
	}
	eventually(t, 10*time.Second, "four reloads", func() (bool, error) {
		_, m, err := get(l.url + "/metrics")
		return strings.Contains(string(m), `gidedge_model_reloads_total{result="ok"} 4`), err
	})
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() > 0 || sent.Load() < 6 {
		t.Fatalf("%d of %d requests failed across reloads", failed.Load(), sent.Load())
	}
}

// TestLiveDrainWithKeepAliveClients stops the server (as SIGTERM does)
// while keep-alive clients send requests back to back and others sit idle
// on open connections. The busy clients speak HTTP/1.1 on a raw connection
// as simple clients do, with no background check that the server closed it:
// a drain that closed connections between their requests would cut them.
// Every request the server read must be answered with 200; the only failure
// a client may see is a refused connection once the port is closed.
func TestLiveDrainWithKeepAliveClients(t *testing.T) {
	jpg := personJPEG(t)
	rounds := 3
	if testing.Short() {
		rounds = 1
	}
	for round := range rounds {
		s := newTestServer(t, Config{Sessions: 1, QueueSize: 12})
		l := startLive(t, s, context.Background())
		addr := strings.TrimPrefix(l.url, "http://")
		var (
			wg         sync.WaitGroup
			answered   atomic.Int32
			refused    atomic.Int32
			stopping   = make(chan struct{})
			mu         sync.Mutex
			unexpected []string
		)
		fail := func(format string, args ...any) {
			mu.Lock()
			unexpected = append(unexpected, fmt.Sprintf(format, args...))
			mu.Unlock()
		}
		request := fmt.Sprintf("POST /v1/detect HTTP/1.1\r\nHost: %s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s", addr, len(jpg), jpg)
		busy := func(id int) {
			var conn net.Conn
			var br *bufio.Reader
			defer func() {
				if conn != nil {
					conn.Close()
				}
			}()
			for i := 0; i < 400; i++ {
				if conn == nil {
					c, err := net.Dial("tcp", addr)
					if errors.Is(err, syscall.ECONNREFUSED) {
						refused.Add(1)
						return
					}
					if err != nil {
						fail("client %d dial: %v", id, err)
						return
					}
					conn, br = c, bufio.NewReader(c)
				}
				if _, err := io.WriteString(conn, request); err != nil {
					fail("client %d request %d: write: %v", id, i, err)
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					fail("client %d request %d: read: %v", id, i, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fail("client %d request %d: status %d", id, i, resp.StatusCode)
				}
				answered.Add(1)
				if resp.Close { // the server asked: reconnect
					conn.Close()
					conn = nil
				}
				// The client's own work between requests: the connection
				// sits idle for a moment.
				time.Sleep(time.Duration(i%4) * time.Millisecond)
			}
		}
		idle := func(id int) {
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
			for i := 0; i < 400; i++ {
				resp, err := c.Post(l.url+"/v1/detect", "image/jpeg", bytes.NewReader(jpg))
				if errors.Is(err, syscall.ECONNREFUSED) {
					refused.Add(1)
					return
				}
				if err != nil {
					fail("idle client %d request %d: %v", id, i, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				answered.Add(1)
				select {
				case <-stopping:
					time.Sleep(2 * drainIdleGrace) // idle across the drain
				case <-time.After(50 * time.Millisecond):
				}
			}
		}
		for id := range 8 {
			wg.Go(func() { busy(id) })
		}
		for id := range 2 {
			wg.Go(func() { idle(id) })
		}
		eventually(t, 20*time.Second, "traffic", func() (bool, error) { return answered.Load() >= 12, nil })
		close(stopping)
		l.stop()
		wg.Wait()
		if err := <-l.done; err != nil {
			t.Fatalf("round %d: Serve returned %v", round, err)
		}
		l.done <- nil // for the cleanup
		if len(unexpected) > 0 {
			t.Fatalf("round %d: %d answered, %d refused, and clients saw %v", round, answered.Load(), refused.Load(), unexpected)
		}
		if refused.Load() != 10 {
			t.Fatalf("round %d: %d of 10 clients ended on a refused connection", round, refused.Load())
		}
	}
}
