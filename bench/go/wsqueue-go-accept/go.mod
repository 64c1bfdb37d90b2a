module wsqueue-go-accept

go 1.23.0

require wsqueue v0.0.0

replace wsqueue => ../../../bindings/go
