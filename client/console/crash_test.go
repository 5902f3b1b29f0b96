package console

// runChild runs a console child process for the crash test, if this
// process is one.
func runChild() bool { return false }
