/* A C embedder: includes hftcore's shared headers and uses them. */
#include <stdio.h>
#include <string.h>
#include "hftcore/types.h"
#include "hftcore/rng.h"

int main(void) {
    hft_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = HFT_EV_DEPTH;
    ev.side = HFT_ASK;
    ev.px = 6183764;
    ev.qty = 154698;
    printf("%zu %d %d %lld\n", sizeof(hft_event_t), (int)ev.kind, (int)ev.side, (long long)ev.px);
    uint64_t s[4];
    hft_rng_seed(s, 0);
    unsigned long long first = (unsigned long long)s[0];
    double u = hft_rng_u01(s);
    printf("%llu %.17g\n", first, u);
    return 0;
}
