//! The page bookkeeping that carries "a checkpoint only after everything before it is
//! settled".
//!
//! A round reads pages in order and archives their items concurrently, so items settle out
//! of order. A page's continuation (its nextLink or deltaLink) may be saved only once every
//! item on it, and on every page before it, is settled (archived, already archived, queued or
//! dead-lettered): saving it earlier would let a run killed right after skip an unfinished
//! item for good. [`PageBook`] keeps the open pages in order and hands out the continuations
//! that became safe to save, in page order.
//!
//! ```
//! # use recarch::round::pages::PageBook;
//! let mut book: PageBook<&str> = PageBook::default();
//! let first = book.push(2, "next-1");
//! let second = book.push(1, "delta");
//! book.settle(second);
//! assert_eq!(book.pop_ready(), None, "the first page is not settled");
//! book.settle(first);
//! book.settle(first);
//! assert_eq!(book.pop_ready(), Some("next-1"));
//! assert_eq!(book.pop_ready(), Some("delta"));
//! ```

use std::collections::VecDeque;

/// Open pages in order, each with its items not yet settled. `C` is what is saved when a
/// page is done (a continuation link).
#[derive(Debug)]
pub struct PageBook<C> {
    /// The oldest open page first.
    open: VecDeque<OpenPage<C>>,
    /// The sequence number of `open.front()`.
    first_seq: u64,
}

impl<C> Default for PageBook<C> {
    fn default() -> Self {
        PageBook {
            open: VecDeque::new(),
            first_seq: 0,
        }
    }
}

#[derive(Debug)]
struct OpenPage<C> {
    /// Items of this page not yet settled.
    remaining: usize,
    /// What to save once this page and every one before it are settled.
    continuation: C,
}

impl<C> PageBook<C> {
    /// The sequence number the next page pushed will get (its items are tagged with it
    /// while the page is read).
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.open.len() as u64
    }

    /// A page read with `items` items to settle; returns its sequence number. A page with no
    /// items is settled at once.
    pub fn push(&mut self, items: usize, continuation: C) -> u64 {
        let seq = self.next_seq();
        self.open.push_back(OpenPage {
            remaining: items,
            continuation,
        });
        seq
    }

    /// One item of page `seq` is settled. A page already handed out (or never pushed) is
    /// ignored.
    pub fn settle(&mut self, seq: u64) {
        let Some(index) = seq.checked_sub(self.first_seq).and_then(|i| usize::try_from(i).ok()) else {
            return;
        };
        if let Some(page) = self.open.get_mut(index) {
            page.remaining = page.remaining.saturating_sub(1);
        }
    }

    /// The continuation of the oldest page, if it and so every page before it are settled;
    /// call until `None` and save the last one.
    pub fn pop_ready(&mut self) -> Option<C> {
        if self.open.front().is_some_and(|p| p.remaining == 0) {
            self.first_seq += 1;
            return self.open.pop_front().map(|p| p.continuation);
        }
        None
    }

    /// Pages read but not handed out.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no page is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::PageBook;

    #[test]
    fn continuations_come_out_in_page_order_only_when_everything_before_is_settled() {
        let mut book = PageBook::default();
        let a = book.push(2, 'a');
        let b = book.push(0, 'b');
        let c = book.push(1, 'c');
        assert_eq!((a, b, c), (0, 1, 2));
        // The last page settles first: nothing may be saved yet.
        book.settle(c);
        assert_eq!(book.pop_ready(), None);
        book.settle(a);
        assert_eq!(book.pop_ready(), None, "one item of the first page is still open");
        book.settle(a);
        assert_eq!(book.pop_ready(), Some('a'));
        // An empty page is settled as soon as it is reached.
        assert_eq!(book.pop_ready(), Some('b'));
        assert_eq!(book.pop_ready(), Some('c'));
        assert_eq!(book.pop_ready(), None);
        assert!(book.is_empty());
        // Sequence numbers go on after pages are handed out.
        assert_eq!(book.push(1, 'd'), 3);
    }

    #[test]
    fn settling_an_unknown_or_handed_out_page_changes_nothing() {
        let mut book = PageBook::default();
        let a = book.push(1, 'a');
        book.settle(a);
        assert_eq!(book.pop_ready(), Some('a'));
        let b = book.push(1, 'b');
        book.settle(a); // already handed out
        book.settle(b + 5); // never pushed
        assert_eq!(book.pop_ready(), None);
        assert_eq!(book.len(), 1);
        book.settle(b);
        assert_eq!(book.pop_ready(), Some('b'));
    }

    #[test]
    fn extra_settles_do_not_underflow() {
        let mut book = PageBook::default();
        let a = book.push(1, 'a');
        book.settle(a);
        book.settle(a);
        assert_eq!(book.pop_ready(), Some('a'));
    }
}
