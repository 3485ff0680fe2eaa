package lease

import "fmt"

// UnmarshalText reads what MarshalText writes, so that fenced status and
// vipctl status can read the state file back.
func (s *State) UnmarshalText(b []byte) error {
	for _, st := range []State{Starting, Healthy, Fenced} {
		if st.String() == string(b) {
			*s = st
			return nil
		}
	}
	return fmt.Errorf("parse lease state %q: not starting, healthy or fenced", b)
}
