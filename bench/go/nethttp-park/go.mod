module wsqueue.local/bench/nethttp-park

go 1.22
