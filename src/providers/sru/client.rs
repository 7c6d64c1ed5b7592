/*!
The one SRU client: a profile, a base URL and an HTTP client. A batch is one request, and
more pages while the catalogue says there are more hits than it sent (a batch of ten ISBNs
may legitimately bring thirty records); an ISBN is a miss only once every page is read.
*/

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::classify::classify;
use super::profile::Profile;
use super::query;
use crate::isbn::Isbn13;
use crate::providers::{Answer, Outcome, Provider, http_client, read_body, send};

/// Pages read for one batch at most: past it the ISBNs without a verdict are asked again in
/// smaller requests, never taken for misses.
const MAX_PAGES: u64 = 10;

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    profile: &'static Profile,
    base: String,
}

impl Client {
    /// A client of `profile`'s catalogue at `base` (its own URL, or a mirror's).
    pub fn new(
        profile: &'static Profile,
        base: &str,
        user_agent: &str,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Client, String> {
        // Compressed, as the catalogue notes ask of a polite client.
        let http = http_client(user_agent, true, timeout, connect_timeout)?;
        Ok(Client {
            http,
            profile,
            base: base.to_string(),
        })
    }

    async fn ask(&self, isbns: &[Isbn13]) -> Answer {
        let mut verdicts: Vec<Option<Outcome>> = (0..isbns.len()).map(|_| None).collect();
        let mut start = 1u64;
        for _ in 0..MAX_PAGES {
            let url = query::url(self.profile, &self.base, isbns, start as u32);
            let (status, body) = match send(self.http.get(&url)).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match read_body(response).await {
                        Ok(body) => (status, body),
                        Err(outcome) => return Answer::Failed(outcome),
                    }
                }
                Err(outcome) => return Answer::Failed(outcome),
            };
            let page = classify(self.profile, status, &body, isbns, start);
            let items = match page.answer {
                Answer::Failed(outcome) => return Answer::Failed(outcome),
                Answer::Items(items) => items,
            };
            // A book found on an earlier page stays; a later page fills in the rest.
            for (verdict, item) in verdicts.iter_mut().zip(items) {
                if !matches!(verdict, Some(Outcome::Found(_))) {
                    *verdict = item;
                }
            }
            if !page.more || page.records == 0 {
                return Answer::Items(verdicts);
            }
            start += page.records as u64;
        }
        // Too many pages: what was found stands, the rest is no verdict.
        for v in verdicts.iter_mut() {
            if !matches!(v, Some(Outcome::Found(_))) {
                *v = None;
            }
        }
        Answer::Items(verdicts)
    }
}

impl Provider for Client {
    /// An unsure ISBN is asked alone: where a batch miss is no verdict (LoC), alone it is.
    fn regroup(&self, _unsure: usize) -> usize {
        1
    }

    fn lookup<'a>(&'a self, isbns: &'a [Isbn13]) -> BoxFuture<'a, Answer> {
        Box::pin(self.ask(isbns))
    }
}
