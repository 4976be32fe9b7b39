//! Acknowledgements of a stream in request order, many in flight: what `StreamExt::buffered` does,
//! at a fraction of its cost when thousands are in flight.
//!
//! `buffered` polls every future it holds as soon as it is pushed and again whenever it wakes; with
//! a window of 16,384 reports that each wait for a group commit, its task queue and wakers were about
//! a quarter of a province's CPU while counties streamed (docs/PERFORMANCE.md, "Profile and changes
//! of 2026-12-08"). The log writer decides reports in the order they were queued, so the earliest one
//! outstanding is always the next to complete: [`InOrder`] polls only that one (one waker
//! registered per stream, not one per report), and the ones behind it are polled when they reach
//! the front, by then mostly complete.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

/// The outputs of the futures of `inner`, in order, with up to `window` of them pending at once.
pub struct InOrder<S: Stream> {
    inner: Option<Pin<Box<S>>>,
    pending: VecDeque<S::Item>,
    window: usize,
}

/// [`InOrder`] over `inner`, at most `window` (≥ 1) futures taken ahead of the earliest unfinished one.
pub fn in_order<S>(inner: S, window: usize) -> InOrder<S>
where
    S: Stream,
    S::Item: Future + Unpin,
{
    InOrder { inner: Some(Box::pin(inner)), pending: VecDeque::new(), window: window.max(1) }
}

impl<S> Stream for InOrder<S>
where
    S: Stream,
    S::Item: Future + Unpin,
{
    type Item = <S::Item as Future>::Output;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Every field is Unpin (the inner stream is boxed).
        let this = self.get_mut();
        while this.pending.len() < this.window {
            let Some(inner) = this.inner.as_mut() else { break };
            match inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(fut)) => this.pending.push_back(fut),
                Poll::Ready(None) => this.inner = None,
                Poll::Pending => break,
            }
        }
        match this.pending.front_mut() {
            Some(front) => match Pin::new(front).poll(cx) {
                Poll::Ready(out) => {
                    this.pending.pop_front();
                    Poll::Ready(Some(out))
                }
                Poll::Pending => Poll::Pending,
            },
            None if this.inner.is_none() => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use futures::channel::oneshot;

    use super::*;

    #[tokio::test]
    async fn outputs_come_in_request_order_whatever_order_the_futures_finish_in() {
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..5).map(|_| oneshot::channel::<u32>()).unzip();
        let mut out = in_order(futures::stream::iter(receivers), 16);
        let mut senders: Vec<_> = senders.into_iter().map(Some).collect();
        // The last three finish first, then the second, then the first.
        for i in [4, 3, 2, 1, 0] {
            senders[i].take().unwrap().send(i as u32 * 10).unwrap();
        }
        let got: Vec<u32> = out.by_ref().map(|r| r.unwrap()).collect().await;
        assert_eq!(got, vec![0, 10, 20, 30, 40]);
    }

    #[tokio::test]
    async fn takes_no_more_than_the_window_ahead_of_the_earliest_unfinished() {
        let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (first_tx, first_rx) = oneshot::channel::<u32>();
        let counted = taken.clone();
        let futures = futures::stream::iter(std::iter::once(first_rx).chain((1..10).map(|i| {
            let (tx, rx) = oneshot::channel();
            tx.send(i).unwrap();
            rx
        })))
        .inspect(move |_| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        let mut out = in_order(futures, 3);
        assert!(futures::poll!(out.next()).is_pending(), "the first is not finished");
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 3, "the window, no more");
        first_tx.send(0).unwrap();
        let got: Vec<u32> = out.map(|r| r.unwrap()).collect().await;
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 10);
    }

    #[tokio::test]
    async fn ends_once_the_requests_end_and_every_output_is_out() {
        let out: Vec<u32> = in_order(futures::stream::iter((0..3).map(std::future::ready)), 2).collect().await;
        assert_eq!(out, vec![0, 1, 2]);
        let none: Vec<u32> = in_order(futures::stream::iter(Vec::<std::future::Ready<u32>>::new()), 2).collect().await;
        assert!(none.is_empty());
    }
}
