package wsqueue

import (
	"os"
	"testing"
)

// A small soft limit so that the tests reach backpressure with little data.
const (
	testSoftLimit = 256 << 10
	testLowWater  = 64 << 10
)

func TestMain(m *testing.M) {
	if err := SetUpgradeConfig(Config{
		SendQueueSoftLimit: testSoftLimit,
		SendQueueLowWater:  testLowWater,
		ReactorThreads:     2,
		CloseTimeoutMs:     2000,
	}); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}
