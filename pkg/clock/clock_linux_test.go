package clock

import (
	"testing"
	"time"
)

// Boottime moves forward with real time and is at least the process's age.
func TestBoottimeAdvances(t *testing.T) {
	a := Boottime()
	time.Sleep(20 * time.Millisecond)
	b := Boottime()
	if a <= 0 || b-a < 20*time.Millisecond {
		t.Fatalf("Boottime %s then %s across a 20 ms sleep", a, b)
	}
}
