// SPDX-License-Identifier: GPL-2.0-only
//! Why a scrape gave no buckets: the one error of the fetch, the exposition
//! reader and the differencing. It is a child of its own so that both
//! readers use it without importing their parent, which imports them.

/// Why a scrape gave no buckets, or two gave no interval.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScrapeError {
    /// An error at one URL.
    #[error("{url}: {source}")]
    At {
        /// The URL (its first 120 characters).
        url: String,
        /// What went wrong there.
        source: Box<ScrapeError>,
    },
    /// The URL is not one that can be scraped.
    #[error("{prefix:?} is not a scrape URL: {why}")]
    Url {
        /// Its first 80 characters.
        prefix: String,
        /// Why.
        why: &'static str,
    },
    /// Connecting or sending the request failed.
    #[error("{0}")]
    Connect(std::io::Error),
    /// Reading the reply failed.
    #[error("reading the reply: {0}")]
    Read(std::io::Error),
    /// The server sent nothing for a whole per-read timeout (the socket's
    /// error, EAGAIN, said nothing an operator could use).
    #[error("the server sent nothing for {:.1} s (the per-read timeout)", .limit.as_secs_f64())]
    Stalled {
        /// The per-read timeout.
        limit: std::time::Duration,
    },
    /// The whole request took longer than allowed.
    #[error("no complete reply within {:.1} s (the whole request's deadline)", .limit.as_secs_f64())]
    Deadline {
        /// The deadline.
        limit: std::time::Duration,
    },
    /// The reply does not start with an HTTP status line.
    #[error("not an HTTP response")]
    NotHttp,
    /// The reply's status is not 200.
    #[error("{0}")]
    Status(String),
    /// The head is too large.
    #[error("a response head over {limit} bytes")]
    HeadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A chunked reply to an HTTP/1.0 request.
    #[error("a chunked reply to an HTTP/1.0 request")]
    Chunked,
    /// The body is too large.
    #[error("the response is over {} MiB", .limit >> 20)]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// One line is too long.
    #[error("line {line} is over {limit} bytes")]
    LineTooLong {
        /// Its number, from 1.
        line: u64,
        /// The limit in bytes.
        limit: usize,
    },
    /// Too many samples in the page.
    #[error("over {limit} samples in the scrape")]
    TooManySamples {
        /// The limit.
        limit: u64,
    },
    /// Too many label sets of the histogram.
    #[error("{histogram}: over {limit} label sets")]
    TooManyLabelSets {
        /// The histogram.
        histogram: String,
        /// The limit.
        limit: usize,
    },
    /// Too many distinct bounds of the histogram.
    #[error("{histogram}: over {limit} distinct le bounds")]
    TooManyBuckets {
        /// The histogram.
        histogram: String,
        /// The limit.
        limit: usize,
    },
    /// A bucket sample that is not one.
    #[error("line {line}: {why}: {prefix:?}")]
    BadSample {
        /// Its number, from 1.
        line: u64,
        /// What is wrong.
        why: &'static str,
        /// The line's first characters.
        prefix: String,
    },
    /// The histogram is not in the page.
    #[error("no histogram named {0:?} in the scrape")]
    NotFound(String),
    /// The counts went down between two scrapes.
    #[error("the histogram's count went down ({before} to {after}): the service restarted")]
    Restarted {
        /// The earlier total.
        before: f64,
        /// The later one.
        after: f64,
    },
}
