package relayconn

// OnDirectoryWait makes c call f whenever a directory download waits for
// one that was already running.
func OnDirectoryWait(c *Conn, f func()) {
	c.dirOnce.mu.Lock()
	c.dirOnce.waiting = f
	c.dirOnce.mu.Unlock()
}
