package console

import (
	"github.com/hrdbeacon/beacon/client"
	"github.com/hrdbeacon/beacon/message"
)

// FlagsOf is the console's [Office.Flag]: it names, from what the
// defender wrote (authenticated, unlike the relay's Beacon-Released
// header), how a received message came: an escalation released to this
// post because the posts of the country did not acknowledge the alert in
// time, a defender's missed check-in, a drill.
func FlagsOf(r *client.Received) []string {
	var flags []string
	switch r.Message.(type) {
	case *message.Escalation:
		flags = append(flags, FlagEscalated)
	case *message.CheckIn:
		flags = append(flags, FlagCheckIn)
	}
	if message.IsExercise(r.Message) {
		flags = append(flags, FlagDrill)
	}
	return flags
}
