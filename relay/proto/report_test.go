package proto

import (
	"errors"
	"testing"
)

func TestReportService(t *testing.T) {
	s, err := ParseService(SvcReportTarget)
	if err != nil || s.Name != SvcReport || SvcReportTarget != "svc.report" {
		t.Fatalf("ParseService(%q) = %+v, %v", SvcReportTarget, s, err)
	}
	if _, err := ParseService("svc.report.all"); !errors.Is(err, ErrSubject) {
		t.Errorf("svc.report.all: %v", err)
	}
	// A report fits a fetch's bytes.
	if MaxReportChunks*MaxReportChunk > MaxFetchBytes {
		t.Errorf("%d chunks of %d bytes exceed MaxFetchBytes", MaxReportChunks, MaxReportChunk)
	}
}
