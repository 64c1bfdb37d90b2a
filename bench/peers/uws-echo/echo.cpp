/*
 * Echo server on uWebSockets, a peer for bench/compare.
 *   uws-echo [PORT=0]   prints "listening on 127.0.0.1:PORT"
 *
 * Written the way uWebSockets' own examples/EchoServer.cpp writes it: uWS::App().ws()
 * with the example's settings and a message handler that sends the message back with
 * ws->send (uWebSockets corks the sends made inside a handler into one write). Two
 * changes, both for the benchmark: no TLS and no compression (the load generator
 * offers neither), and it listens on 127.0.0.1 on the port given (0: any free port).
 * One thread, one event loop (epoll), like one reactor.
 *
 * Built by bench/peers/uws-echo/build.sh from the uWebSockets and uSockets sources.
 */
#include "App.h"

#include <cstdio>
#include <cstdlib>

int main(int argc, char **argv) {
    int port = argc > 1 ? std::atoi(argv[1]) : 0;

    struct PerSocketData {
    };

    uWS::App().ws<PerSocketData>("/*", {
        .compression = uWS::DISABLED,
        .maxPayloadLength = 100 * 1024 * 1024,
        /* The example's keepalive: a ping when a connection has been idle this long
         * (less a margin), a close if nothing comes back. */
        .idleTimeout = 16,
        .maxBackpressure = 100 * 1024 * 1024,
        .closeOnBackpressureLimit = false,
        .resetIdleTimeoutOnSend = false,
        .sendPingsAutomatically = true,
        .message = [](auto *ws, std::string_view message, uWS::OpCode opCode) {
            ws->send(message, opCode, false);
        },
    }).listen("127.0.0.1", port, [](auto *listen_socket) {
        if (!listen_socket) {
            std::fprintf(stderr, "uws-echo: cannot listen on 127.0.0.1\n");
            std::exit(1);
        }
        /* Scripts wait for this line; stdout is a pipe, so flush it. */
        std::printf("listening on 127.0.0.1:%d\n",
                    us_socket_local_port(0, (struct us_socket_t *) listen_socket));
        std::fflush(stdout);
    }).run();
}
