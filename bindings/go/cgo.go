package wsqueue

// The engine is linked statically by default, so a Go program that uses this
// package ships as one binary. Build with -tags wsqueue_shared to link
// libwsqueue.so instead (see README.md).

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo !wsqueue_shared LDFLAGS: ${SRCDIR}/../../target/release/libwsqueue.a -ldl -lpthread -lm
#cgo wsqueue_shared LDFLAGS: -L${SRCDIR}/../../target/release -lwsqueue -Wl,-rpath,${SRCDIR}/../../target/release
#include <stdlib.h>
#include "wsqueue.h"
*/
import "C"
