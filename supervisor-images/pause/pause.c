/*
 * caas sandbox process: PID 1 of a workload's sandbox container. It holds the network and UTS
 * namespaces the app container joins, reaps any zombies it inherits, and exits promptly on
 * SIGTERM/SIGINT so `docker stop` does not wait for the kill timeout.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) {
    (void)sig;
    _exit(0);
}

static void on_child(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction term = {0};
    term.sa_handler = on_term;
    sigaction(SIGTERM, &term, NULL);
    sigaction(SIGINT, &term, NULL);

    struct sigaction child = {0};
    child.sa_handler = on_child;
    child.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    sigaction(SIGCHLD, &child, NULL);

    for (;;) {
        pause();
    }
    return 0;
}
