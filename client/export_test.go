package client

// SetOpenWork lowers the decryption work one batch of c may cost, so a
// test of the bound need not spend a second of CPU.
func SetOpenWork(c *Client, n int) { c.openWork = n }

// MaxHeldBack is maxHeldBack, for the test of the bound.
const MaxHeldBack = maxHeldBack
