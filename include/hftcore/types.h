/*
 * hftcore/types.h -- the basic types shared by hftcore and its embedders.
 *
 * Units, everywhere in the core:
 *   - prices are int64 *ticks*   (price = ticks * PRICE_FILTER.tickSize)
 *   - quantities are int64 *lots* (qty = lots * LOT_SIZE.stepSize)
 *   - update ids / trade ids are int64 sequence numbers as Binance sends them
 *   - times are int64 *nanoseconds* since the Unix epoch (UTC)
 *
 * The market-event record below is the on-disk and in-memory layout of one
 * normalised event; numpy's hftcore.EVENT_DTYPE matches it byte for byte.
 */
#ifndef HFTCORE_TYPES_H
#define HFTCORE_TYPES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int64_t hft_px_t;   /* price in ticks */
typedef int64_t hft_qty_t;  /* quantity in lots */
typedef int64_t hft_seq_t;  /* exchange update id / trade id */
typedef int64_t hft_ts_t;   /* nanoseconds since the Unix epoch */

/* Book sides. For trades, `side` is the side of the resting (maker) order that
 * was hit: HFT_BID when the buyer was the maker (a sell aggressor), HFT_ASK when
 * the seller was the maker (a buy aggressor). */
#define HFT_BID 0
#define HFT_ASK 1

/* Event kinds */
#define HFT_EV_DEPTH    1  /* diff-depth level: absolute qty at price (0 = delete) */
#define HFT_EV_TRADE    2  /* trade (or aggTrade) at price for qty lots            */
#define HFT_EV_SNAPSHOT 3  /* one level of a depth snapshot                        */
#define HFT_EV_BBO      4  /* one side of a bookTicker (best price and qty)        */
#define HFT_EV_BOOK_INVALID 5  /* the book is unknown from here until the next
                                * SNAPSHOT run (a gap, a crossed book, a reset);
                                * px holds the reason (HFT_INVALID_*), qty 0,
                                * first_id = last_id = the last valid update id */
#define HFT_EV_FUNDING  6  /* a futures funding payment at exch_ts (the funding
                            * time): px = the mark price in ticks (0: unknown,
                            * the book's mid is used), qty = the funding rate in
                            * units of HFT_FUNDING_RATE_SCALE (1e-10); longs pay
                            * position x mark x rate when it is positive        */
#define HFT_FUNDING_RATE_SCALE 10000000000LL  /* rate = qty / this             */

/* Reasons of an HFT_EV_BOOK_INVALID record (its px) */
#define HFT_INVALID_GAP     1  /* update ids missing from the stream         */
#define HFT_INVALID_CROSSED 2  /* best bid >= best ask after an event        */
#define HFT_INVALID_RESET   3  /* the client dropped the book (reconnect, ...) */
#define HFT_INVALID_IDS     4  /* the stream contradicts the book's update id (an
                            * impossible id: the book no longer follows it)  */

/* Event flags (bit set) */
#define HFT_EVF_BEGIN   0x01  /* first record of one exchange message            */
#define HFT_EVF_END     0x02  /* last record of one exchange message             */
#define HFT_EVF_EMPTY   0x04  /* message carried no level: px/qty are not a level */

/* Sentinel for an absent update id (e.g. `pu` on spot) */
#define HFT_NO_ID INT64_MIN

/*
 * One market event, 64 bytes (one cache line), little-endian, naturally aligned.
 *   local_ts  receive time on our side, ns
 *   exch_ts   exchange event time (E, or T for trades), ns
 *   px        price, ticks
 *   qty       quantity, lots
 *   first_id  U (depth), trade id / first trade id (trades), lastUpdateId (snapshot)
 *   last_id   u (depth, bookTicker), last trade id (aggTrade), lastUpdateId (snapshot)
 *   prev_id   pu (USD-M depth), otherwise HFT_NO_ID
 *   kind      HFT_EV_*
 *   side      HFT_BID / HFT_ASK
 *   flags     HFT_EVF_*
 */
typedef struct hft_event {
    hft_ts_t  local_ts;
    hft_ts_t  exch_ts;
    hft_px_t  px;
    hft_qty_t qty;
    hft_seq_t first_id;
    hft_seq_t last_id;
    hft_seq_t prev_id;
    uint8_t   kind;
    uint8_t   side;
    uint8_t   flags;
    uint8_t   _pad[5];
} hft_event_t;

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(hft_event_t) == 64, "hft_event_t must be 64 bytes");
#endif

#ifdef __cplusplus
}
#endif

#endif /* HFTCORE_TYPES_H */
