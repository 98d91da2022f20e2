//! Fetching what a gap lost: pages of `findMessages`, newest first, until older than the gap,
//! bounded in pages, bytes and time; read again whole when a second straddles two pages.

use super::*;

/// What went wrong with a page.
pub(super) enum Failure {
    Unavailable(String),
    Failed(String),
}

/// One page of `findMessages`: `size` records of page `number`, within the page's time limit.
pub(super) async fn page(
    rest: &RestClient,
    settings: &Backfill,
    size: u32,
    number: u32,
) -> Result<FoundPage, Failure> {
    let call = rest.find_messages_page(json!({}), size, number);
    // The client's own timeout is the page's (see `SupervisorBuilder::start`); this one only
    // guards against a client built otherwise.
    let guard = settings.page_timeout + Duration::from_secs(1);
    match tokio::time::timeout(guard, call).await {
        Err(_) => Err(Failure::Failed(format!(
            "findMessages did not answer within {}",
            human::duration(settings.page_timeout)
        ))),
        Ok(Err(RestError::NotFound { .. })) => Err(Failure::Unavailable(
            "the server has no findMessages route (404)".into(),
        )),
        Ok(Err(RestError::Unauthorized { .. })) => Err(Failure::Unavailable(
            "the server refuses this token for findMessages (401)".into(),
        )),
        Ok(Err(e)) => Err(Failure::Failed(format!("findMessages: {e}"))),
        Ok(Ok(found)) => Ok(found),
    }
}

/// The records a recovery fetched: each message once, by key id, at most `cap` of them.
pub(super) struct Fetched {
    pub(super) cap: usize,
    /// (timestamp, row id, the record's text).
    pub(super) records: Vec<(i64, i64, String)>,
    pub(super) keys: HashSet<String>,
    pub(super) bytes: usize,
}

impl Fetched {
    /// Keeps the first `size` records of `page` sent at or after `from`; returns whether the
    /// page reached older ones.
    pub(super) fn keep(&mut self, page: &FoundPage, size: u32, from: i64) -> bool {
        let mut older = false;
        // A page holds at most `size` records: a server that sends more gets no more read.
        for record in page.records.iter().take(size as usize) {
            if self.records.len() >= self.cap {
                break;
            }
            match FoundPage::timestamp(record) {
                Some(t) if t < from => older = true,
                t => {
                    let key = FoundPage::message_id(record).unwrap_or_default();
                    if !key.is_empty() && !self.keys.insert(key.to_owned()) {
                        continue;
                    }
                    let text = record.to_string();
                    self.bytes += text.len();
                    // Evolution API's records have no ordered id: among messages of one second,
                    // the reverse of the server's order (it answers newest first).
                    let position = -i64::try_from(self.records.len()).unwrap_or(i64::MAX);
                    let row = FoundPage::row_id(record)
                        .or_else(|| record.get("key").map(|_| position))
                        .unwrap_or(i64::MAX);
                    self.records.push((t.unwrap_or(i64::MIN), row, text));
                }
            }
        }
        older
    }
}

/// Pages `findMessages` from the newest until older than `from`: the records at or after it,
/// oldest first.
///
/// The server sorts by `messageTimestamp` alone, and each request may order the messages of one
/// second differently: where such a second straddles two pages, a message can fall between
/// them. When that happened, everything is read again in one request (one sort on the server,
/// so every second that fits in it comes whole), with a page's room for what arrived meanwhile.
pub(super) async fn fetch(
    rest: &RestClient,
    from: i64,
    settings: &Backfill,
) -> Result<Vec<(i64, String)>, Failure> {
    let size = settings.page_size;
    let most = u64::from(settings.page_size) * u64::from(settings.max_pages);
    let mut fetched = Fetched {
        cap: usize::try_from(most).unwrap_or(usize::MAX),
        records: Vec::new(),
        keys: HashSet::new(),
        bytes: 0,
    };
    let mut pages = 0;
    let mut straddled = false;
    let mut last_before: Option<i64> = None;
    // How far down the server's order the pages went.
    let mut depth = 0u64;
    for number in 1..=settings.max_pages {
        let found = page(rest, settings, size, number).await?;
        pages = number;
        let first = found.records.first().and_then(FoundPage::timestamp);
        straddled |= last_before.is_some() && first == last_before;
        let read = found.records.len().min(size as usize);
        depth += read as u64;
        last_before = found.records[..read].last().and_then(FoundPage::timestamp);
        let older = fetched.keep(&found, size, from);
        if fetched.bytes > MAX_BYTES {
            tracing::warn!(
                "recovery stopped at {} MiB of messages; older missed messages are not recovered",
                MAX_BYTES >> 20
            );
            break;
        }
        if older || found.records.len() < size as usize {
            break;
        }
        if number == settings.max_pages {
            tracing::warn!(
                pages = number,
                "recovery stopped after its last page; older missed messages are not recovered"
            );
        }
    }
    // Within the recovery's pages: a recovery that used them all reads no more.
    if straddled && pages < settings.max_pages {
        let whole = (depth + u64::from(size)).min(most);
        let whole = u32::try_from(whole).unwrap_or(u32::MAX);
        match page(rest, settings, whole, 1).await {
            Ok(found) => {
                fetched.keep(&found, whole, from);
            }
            Err(Failure::Failed(e) | Failure::Unavailable(e)) => tracing::warn!(
                "messages of one second straddled two pages, and reading them again failed ({e}): one of them may be missing"
            ),
        }
    }
    // In arrival order: by timestamp, then by row id (the server's autoincrement), since the
    // server sorts by timestamp alone and gives the messages of one second in any order.
    let mut records = fetched.records;
    records.sort_by_key(|(t, row, _)| (*t, *row));
    Ok(records.into_iter().map(|(t, _, text)| (t, text)).collect())
}
