module wsqueue-examples

go 1.23

require wsqueue v0.0.0

replace wsqueue => ../../bindings/go
