//! `portcullis explain` and admin `POST /explain`: one explanation path for both,
//! so the CLI and the API give the same answer. An opaque token is introspected
//! through the decider's introspector (its cache included, as a live request
//! would be), then the request is explained again with the answer.

use portcullis_policy::explain::{ExplainRequest, Explanation, InvalidExplainRequest};

use crate::Decider;

impl Decider {
    /// Explains `request` against the engine in force, at the decider's now.
    ///
    /// # Errors
    /// A method, URL or header that is not valid HTTP.
    pub async fn explain(
        &self,
        request: &ExplainRequest,
    ) -> Result<Explanation, InvalidExplainRequest> {
        let engine = self.engine();
        let prepared = request.prepare(&engine)?;
        let first = prepared.explain(&engine, self.now(), None);
        let (Some(ask), Some(introspector)) = (first.introspect.as_ref(), &self.introspector)
        else {
            return Ok(first);
        };
        let Some(provider) = engine.providers().get(ask.provider) else {
            return Ok(first);
        };
        let (answer, source) = introspector
            .introspect_sourced(provider, &ask.token, self.now())
            .await;
        let mut again = prepared.explain(&engine, self.now(), Some(&answer));
        again.note_answer_source(source);
        Ok(again)
    }
}
