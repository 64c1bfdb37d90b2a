module wsqueue

go 1.23.0

require (
	github.com/coder/websocket v1.8.14
	github.com/gorilla/websocket v1.5.3
)

require golang.org/x/net v0.38.0
