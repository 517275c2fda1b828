//! The deterministic state machine: validates a transaction against the state, then applies it
//! and computes the decision for every access request.

use std::collections::BTreeSet;

use custos_crypto::Hash;
use custos_types::tx::{
    ConfirmRelease, EraseRecord, Governance, RegisterDelegate, RegisterParty, RegisterRecord,
    ReportRefusal, RequestAccess,
};
use custos_types::{
    AccessMode, ChainId, Consent, ConsentId, Decision, DecisionReason, EntryKind, FieldError,
    Genesis, Height, Parameters, PartyId, RecordId, RequestId, Role, SignedTransaction, Timestamp,
    TxKind,
};

use crate::error::TxError;
use crate::state::{
    ConsentState, DelegateState, Kv, PartyState, RecordState, RequestState, StateChange,
    StateDecodeError, StateKey, StateValue, ValidatorEntry,
};

/// The block a transaction is applied in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlockContext {
    /// Its height.
    pub height: Height,
    /// Its time: consent periods are judged against it.
    pub time: Timestamp,
}

/// The consent state machine over its key-value state.
#[derive(Clone, Debug)]
pub struct StateMachine {
    chain_id: ChainId,
    pub(crate) kv: Kv,
}

/// What applying one transaction does: state writes and log entries.
pub(crate) struct Plan {
    pub(crate) writes: Vec<(StateKey, StateValue)>,
    pub(crate) deletes: Vec<StateKey>,
    pub(crate) decision: Option<Decision>,
}

const ZERO_ID: [u8; 32] = [0u8; 32];

impl StateMachine {
    /// The state a chain starts with.
    pub fn genesis(genesis: &Genesis) -> Result<Self, FieldError> {
        genesis.validate()?;
        let mut kv = Kv::default();
        kv.put(StateKey::Params, StateValue::Params(genesis.parameters));
        for p in &genesis.parties {
            kv.put(
                StateKey::Party(p.public_key),
                StateValue::Party(PartyState {
                    role: p.role,
                    encryption_key: p.encryption_key,
                    organisation: p.organisation.clone(),
                    member: p.member,
                    registered: Height(0),
                }),
            );
        }
        let mut validators: Vec<ValidatorEntry> = genesis
            .validators
            .iter()
            .map(|v| ValidatorEntry {
                key: v.public_key.0,
                power: v.power,
                address: v.address.clone(),
            })
            .collect();
        validators.sort_by_key(|v| v.key);
        kv.put(
            StateKey::Validators,
            StateValue::Validators(validators.clone()),
        );
        kv.put(
            StateKey::ValidatorSetAt(Height(1)),
            StateValue::Validators(validators),
        );
        // Genesis items are part of the initial state, not a change of block 1.
        let _ = kv.take_changes();
        Ok(StateMachine {
            chain_id: genesis.chain_id.clone(),
            kv,
        })
    }

    /// Rebuilds the machine from stored items.
    pub fn from_items<'a>(
        chain_id: ChainId,
        items: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Self, StateDecodeError> {
        Ok(StateMachine {
            chain_id,
            kv: Kv::from_items(items)?,
        })
    }

    /// The chain.
    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    /// The state root.
    pub fn root(&self) -> Hash {
        self.kv.root()
    }

    /// Every state item, encoded.
    pub fn items(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.kv.items()
    }

    /// The changes since the last call (to persist with the block).
    pub fn take_changes(&mut self) -> Vec<StateChange> {
        self.kv.take_changes()
    }

    /// Undoes the changes since the last [`StateMachine::take_changes`].
    pub fn rollback(&mut self) {
        self.kv.rollback()
    }

    /// Whether `tx` would apply now, without changing anything.
    pub fn check_tx(&self, tx: &SignedTransaction, ctx: BlockContext) -> Result<(), TxError> {
        self.plan(tx, ctx).map(|_| ())
    }

    /// Applies `tx`: all checks first, then the writes, so a refused transaction changes nothing.
    /// Returns the log entries it adds: the transaction, then its decision if it is a request.
    pub fn apply_tx(
        &mut self,
        tx: &SignedTransaction,
        ctx: BlockContext,
    ) -> Result<Vec<EntryKind>, TxError> {
        let plan = self.plan(tx, ctx)?;
        for (key, value) in plan.writes {
            self.kv.put(key, value);
        }
        for key in &plan.deletes {
            self.kv.delete(key);
        }
        let mut entries = vec![EntryKind::Transaction(tx.clone())];
        if let Some(decision) = plan.decision {
            entries.push(EntryKind::Decision(decision));
        }
        Ok(entries)
    }

    /// Starts a block: validator changes due at its height take effect. Every block, empty or
    /// not, begins with this call.
    pub fn begin_block(&mut self, ctx: BlockContext) {
        let due = self.changes_due(ctx.height);
        if due.is_empty() {
            return;
        }
        for (key, _) in &due {
            self.kv.delete(key);
        }
        // A consortium never loses its last validator; such a change is ignored.
        if let Some(set) = self.with_changes(&due) {
            self.kv
                .put(StateKey::Validators, StateValue::Validators(set.clone()));
            self.kv.put(
                StateKey::ValidatorSetAt(ctx.height),
                StateValue::Validators(set),
            );
        }
    }

    /// The pending validator changes due at or before `height`, in (height, key) order. Reads
    /// only the change keys, not the whole state: this runs for every block.
    fn changes_due(&self, height: Height) -> Vec<(StateKey, Option<(u64, String)>)> {
        self.kv
            .range_from(StateKey::Validators)
            .skip_while(|(k, _)| matches!(k, StateKey::Validators))
            .map_while(|(k, v)| match (k, v) {
                (StateKey::ValidatorChange(h, _), StateValue::ValidatorChange(c)) => {
                    Some((k, h, c))
                }
                _ => None,
            })
            .filter(|(_, h, _)| **h <= height)
            .map(|(k, _, c)| (k.clone(), c.clone()))
            .collect()
    }

    /// The current set with `changes` applied, sorted; `None` if it would be empty.
    fn with_changes(
        &self,
        changes: &[(StateKey, Option<(u64, String)>)],
    ) -> Option<Vec<ValidatorEntry>> {
        let mut set = self.validators();
        for (key, change) in changes {
            let StateKey::ValidatorChange(_, validator) = key else {
                continue;
            };
            set.retain(|v| v.key != *validator);
            if let Some((power, address)) = change {
                set.push(ValidatorEntry {
                    key: *validator,
                    power: *power,
                    address: address.clone(),
                });
            }
        }
        set.sort_by_key(|v| v.key);
        (!set.is_empty()).then_some(set)
    }

    /// The current validator set (after the last begun block's changes).
    pub fn validators(&self) -> Vec<ValidatorEntry> {
        match self.kv.get(&StateKey::Validators) {
            Some(StateValue::Validators(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    /// The validator set that signs `height` (history included).
    pub fn validators_at(&self, height: Height) -> Vec<ValidatorEntry> {
        self.kv
            .range(
                StateKey::ValidatorSetAt(Height(0)),
                StateKey::ValidatorSetAt(height),
            )
            .filter_map(|(_, v)| match v {
                StateValue::Validators(set) => Some(set.clone()),
                _ => None,
            })
            .last()
            .unwrap_or_default()
    }

    /// The validator set that will sign the block after `height`: the current set with the
    /// changes due at `height + 1` applied.
    pub fn next_validators(&self, height: Height) -> Vec<ValidatorEntry> {
        let due = self.changes_due(Height(height.0 + 1));
        if due.is_empty() {
            return self.validators();
        }
        self.with_changes(&due).unwrap_or_else(|| self.validators())
    }

    /// A circuit's registered verifying key hash.
    pub fn verifying_key(&self, circuit: &str) -> Option<Hash> {
        match self.kv.get(&StateKey::VerifyingKey(circuit.to_string())) {
            Some(StateValue::VerifyingKey(h)) => Some(*h),
            _ => None,
        }
    }

    // ---- queries ----

    /// Consortium parameters.
    pub fn parameters(&self) -> Parameters {
        match self.kv.get(&StateKey::Params) {
            Some(StateValue::Params(p)) => *p,
            _ => Parameters::default(),
        }
    }

    /// A party.
    pub fn party(&self, id: &PartyId) -> Option<&PartyState> {
        match self.kv.get(&StateKey::Party(*id)) {
            Some(StateValue::Party(p)) => Some(p),
            _ => None,
        }
    }

    /// A party's next nonce.
    pub fn next_nonce(&self, id: &PartyId) -> u64 {
        match self.kv.get(&StateKey::Nonce(*id)) {
            Some(StateValue::Nonce(n)) => *n,
            _ => 0,
        }
    }

    /// A record.
    pub fn record(&self, id: &RecordId) -> Option<&RecordState> {
        match self.kv.get(&StateKey::Record(*id)) {
            Some(StateValue::Record(r)) => Some(r),
            _ => None,
        }
    }

    /// A consent.
    pub fn consent(&self, id: &ConsentId) -> Option<&ConsentState> {
        match self.kv.get(&StateKey::Consent(*id)) {
            Some(StateValue::Consent(c)) => Some(c),
            _ => None,
        }
    }

    /// A decided request.
    pub fn request(&self, id: &RequestId) -> Option<&RequestState> {
        match self.kv.get(&StateKey::Request(*id)) {
            Some(StateValue::Request(r)) => Some(r),
            _ => None,
        }
    }

    /// A patient's consents, in id order.
    pub fn consents_of(&self, patient: &PartyId) -> Vec<(ConsentId, &ConsentState)> {
        let from = StateKey::PatientConsent(*patient, ConsentId(Hash(ZERO_ID)));
        let to = StateKey::PatientConsent(*patient, ConsentId(Hash([0xff; 32])));
        self.kv
            .range(from, to)
            .filter_map(|(k, _)| match k {
                StateKey::PatientConsent(_, id) => self.consent(id).map(|c| (*id, c)),
                _ => None,
            })
            .collect()
    }

    /// Whether `delegate` may act for `patient` at `time`.
    pub fn is_delegate(&self, patient: &PartyId, delegate: &PartyId, time: Timestamp) -> bool {
        match self.kv.get(&StateKey::Delegate(*patient, *delegate)) {
            Some(StateValue::Delegate(d)) => d.expires.is_none_or(|e| time < e),
            _ => false,
        }
    }

    /// Every registered party, in id order.
    pub fn parties(&self) -> Vec<(PartyId, PartyState)> {
        self.kv
            .iter()
            .filter_map(|(k, v)| match (k, v) {
                (StateKey::Party(id), StateValue::Party(p)) => Some((*id, p.clone())),
                _ => None,
            })
            .collect()
    }

    /// The member organisations that vote in governance.
    pub fn members(&self) -> BTreeSet<PartyId> {
        self.kv
            .iter()
            .filter_map(|(k, v)| match (k, v) {
                (StateKey::Party(id), StateValue::Party(p)) if p.member => Some(*id),
                _ => None,
            })
            .collect()
    }

    // ---- validation ----

    fn plan(&self, tx: &SignedTransaction, ctx: BlockContext) -> Result<Plan, TxError> {
        let body = tx.body();
        if body.chain_id != self.chain_id {
            return Err(TxError::WrongChain {
                expected: self.chain_id.to_string(),
                got: body.chain_id.to_string(),
            });
        }
        let author = tx.author();
        let expected = self.next_nonce(&author);
        let got = body.nonce.0;
        if got < expected {
            return Err(TxError::ReplayedNonce {
                author: author.short(),
                expected,
                got,
            });
        }
        if got > expected {
            return Err(TxError::FutureNonce {
                author: author.short(),
                expected,
                got,
            });
        }
        let author_state = self.party(&author);
        if author_state.is_none() && !matches!(body.kind, TxKind::RegisterParty(_)) {
            return Err(TxError::UnknownAuthor(author));
        }
        let mut plan = Plan {
            writes: vec![],
            deletes: vec![],
            decision: None,
        };
        plan.writes
            .push((StateKey::Nonce(author), StateValue::Nonce(expected + 1)));
        match &body.kind {
            TxKind::RegisterParty(p) => self.plan_register_party(tx, p, ctx, &mut plan)?,
            TxKind::RegisterRecord(r) => self.plan_register_record(author, r, ctx, &mut plan)?,
            TxKind::GrantConsent(c) => self.plan_grant(tx, c, ctx, &mut plan)?,
            TxKind::RevokeConsent(id) => self.plan_revoke(author, id, ctx, &mut plan)?,
            TxKind::RegisterDelegate(d) => self.plan_delegate(author, d, ctx, &mut plan)?,
            TxKind::RequestAccess(r) => self.plan_request(tx, r, ctx, &mut plan)?,
            TxKind::ConfirmRelease(c) => self.plan_confirm(author, c, &mut plan)?,
            TxKind::EraseRecord(e) => self.plan_erase(author, e, ctx, &mut plan)?,
            TxKind::ReportRefusal(r) => self.plan_refusal(tx, r, ctx, &mut plan)?,
            TxKind::Governance(g) => self.plan_governance(tx, g, ctx, &mut plan)?,
        }
        Ok(plan)
    }

    fn require_governance(&self, tx: &SignedTransaction) -> Result<(), TxError> {
        let members = self.members();
        let got = tx.signers().intersection(&members).count();
        // At least 2/3 of the member organisations: 3·got ≥ 2·members.
        let needed = (2 * members.len()).div_ceil(3).max(1);
        if got < needed {
            return Err(TxError::InsufficientGovernance {
                needed,
                members: members.len(),
                got,
            });
        }
        Ok(())
    }

    fn plan_register_party(
        &self,
        tx: &SignedTransaction,
        p: &RegisterParty,
        ctx: BlockContext,
        plan: &mut Plan,
    ) -> Result<(), TxError> {
        if p.party != tx.author() {
            return Err(TxError::NotAuthorized(
                "a party registers itself: the author must be the party".into(),
            ));
        }
        if self.party(&p.party).is_some() {
            return Err(TxError::PartyExists(p.party));
        }
        if p.role != Role::Patient {
            self.require_governance(tx)?;
        } else if !p.organisation.as_str().is_empty() {
            return Err(TxError::Invalid {
                field: "register_party.organisation",
                reason: "patients belong to no organisation".into(),
            });
        }
        plan.writes.push((
            StateKey::Party(p.party),
            StateValue::Party(PartyState {
                role: p.role,
                encryption_key: p.encryption_key,
                organisation: p.organisation.clone(),
                member: false,
                registered: ctx.height,
            }),
        ));
        Ok(())
    }

    fn plan_register_record(
        &self,
        author: PartyId,
        r: &RegisterRecord,
        ctx: BlockContext,
        plan: &mut Plan,
    ) -> Result<(), TxError> {
        self.require_role(
            author,
            &[Role::Custodian],
            "only a custodian registers records",
        )?;
        match self.party(&r.owner) {
            Some(p) if p.role == Role::Patient => {}
            Some(_) => {
                return Err(TxError::Invalid {
                    field: "register_record.owner",
                    reason: "the owner must be a patient".into(),
                });
            }
            None => {
                return Err(TxError::UnknownParty {
                    field: "register_record.owner",
                    party: r.owner,
                });
            }
        }
        if self.record(&r.record_id).is_some() {
            return Err(TxError::RecordExists(r.record_id));
        }
        plan.writes.push((
            StateKey::CustodianRecord(author, r.category.clone(), r.record_id),
            StateValue::Marker,
        ));
        plan.writes.push((
            StateKey::Record(r.record_id),
            StateValue::Record(RecordState {
                owner: r.owner,
                custodian: author,
                category: r.category.clone(),
                ciphertext_digest: r.ciphertext_digest,
                attribute_commitment: r.attribute_commitment,
                registered: ctx.height,
                erased: None,
            }),
        ));
        Ok(())
    }

    fn require_role(&self, who: PartyId, roles: &[Role], why: &str) -> Result<(), TxError> {
        match self.party(&who) {
            Some(p) if roles.contains(&p.role) => Ok(()),
            Some(p) => Err(TxError::NotAuthorized(format!(
                "{why}; {} is a {}",
                who.short(),
                p.role
            ))),
            None => Err(TxError::UnknownAuthor(who)),
        }
    }

    fn require_patient_or_delegate(
        &self,
        author: PartyId,
        patient: PartyId,
        time: Timestamp,
    ) -> Result<(), TxError> {
        if author == patient || self.is_delegate(&patient, &author, time) {
            Ok(())
        } else {
            Err(TxError::NotAuthorized(format!(
                "{} is neither the patient {} nor a delegate the patient registered",
                author.short(),
                patient.short()
            )))
        }
    }

    fn plan_grant(
        &self,
        tx: &SignedTransaction,
        c: &Consent,
        ctx: BlockContext,
        plan: &mut Plan,
    ) -> Result<(), TxError> {
        match self.party(&c.patient) {
            Some(p) if p.role == Role::Patient => {}
            Some(_) => {
                return Err(TxError::Invalid {
                    field: "grant_consent.consent.patient",
                    reason: "consent is granted for a patient".into(),
                });
            }
            None => {
                return Err(TxError::UnknownParty {
                    field: "grant_consent.consent.patient",
                    party: c.patient,
                });
            }
        }
        self.require_patient_or_delegate(tx.author(), c.patient, ctx.time)?;
        // A delegate acts for the patient, never for itself.
        if tx.author() != c.patient && c.grantee == tx.author() {
            return Err(TxError::NotAuthorized(format!(
                "delegate {} cannot grant consent to itself",
                tx.author().short()
            )));
        }
        if self.party(&c.grantee).is_none() {
            return Err(TxError::UnknownParty {
                field: "grant_consent.consent.grantee",
                party: c.grantee,
            });
        }
        if let custos_types::Scope::Some { records, .. } = &c.scope {
            for id in records {
                match self.record(id) {
                    Some(r) if r.owner == c.patient => {}
                    Some(_) => {
                        return Err(TxError::NotAuthorized(format!(
                            "record {} does not belong to the patient",
                            id.short()
                        )));
                    }
                    None => return Err(TxError::UnknownRecord(*id)),
                }
            }
        }
        let id = ConsentId(tx.id().0);
        plan.writes.push((
            StateKey::Consent(id),
            StateValue::Consent(ConsentState {
                consent: c.clone(),
                granted_by: tx.author(),
                granted: ctx.height,
                revoked: None,
            }),
        ));
        plan.writes
            .push((StateKey::PatientConsent(c.patient, id), StateValue::Marker));
        Ok(())
    }

    fn plan_revoke(
        &self,
        author: PartyId,
        id: &ConsentId,
        ctx: BlockContext,
        plan: &mut Plan,
    ) -> Result<(), TxError> {
        let state = self.consent(id).ok_or(TxError::UnknownConsent(*id))?;
        self.require_patient_or_delegate(author, state.consent.patient, ctx.time)?;
        if state.revoked.is_some() {
            return Err(TxError::AlreadyRevoked(*id));
        }
        let mut next = state.clone();
        next.revoked = Some(ctx.height);
        plan.writes
            .push((StateKey::Consent(*id), StateValue::Consent(next)));
        Ok(())
    }

    fn plan_delegate(
        &self,
        author: PartyId,
        d: &RegisterDelegate,
        ctx: BlockContext,
        plan: &mut Plan,
    ) -> Result<(), TxError> {
        self.require_role(
            author,
            &[Role::Patient],
            "only a patient registers delegates",
        )?;
        if d.delegate == author {
            return Err(TxError::Invalid {
                field: "register_delegate.delegate",
                reason: "a patient cannot delegate to themself".into(),
            });
        }
        if self.party(&d.delegate).is_none() {
            return Err(TxError::UnknownParty {
                field: "register_delegate.delegate",
                party: d.delegate,
            });
        }
        if let Some(expires) = d.expires
            && expires <= ctx.time
            && !d.revoke
        {
            return Err(TxError::Invalid {
                field: "register_delegate.expires_ms",
                reason: format!(
                    "expiry {} is not after the block time {}",
                    expires.0, ctx.time.0
                ),
            });
        }
        let key = StateKey::Delegate(author, d.delegate);
        if d.revoke {
            // A revoked delegation expires at once; the entry stays as history.
            if !self.is_delegate(&author, &d.delegate, ctx.time) {
                return Err(TxError::Invalid {
                    field: "register_delegate.delegate",
                    reason: "no active delegation to revoke".into(),
                });
            }
            plan.writes.push((
                key,
                StateValue::Delegate(DelegateState {
                    expires: Some(ctx.time),
                    registered: ctx.height,
                }),
            ));
        } else {
            plan.writes.push((
                key,
                StateValue::Delegate(DelegateState {
                    expires: d.expires,
                    registered: ctx.height,
                }),
            ));
        }
        Ok(())
    }

    fn plan_request(
        &self,
        tx: &SignedTransaction,
        r: &RequestAccess,
        ctx: BlockContext,
        plan: &mut Plan,
    ) -> Result<(), TxError> {
        if r.mode == AccessMode::Aggregate {
            return self.plan_aggregate(tx, r, ctx, plan);
        }
        let requester = tx.author();
        let request_id = RequestId(tx.id().0);
        let (reason, consent_id) = self.decide(requester, r, ctx);
        let record = self.record(&r.record_id);
        let decision = Decision {
            request_id,
            requester,
            record_id: r.record_id,
            patient: record.map(|rec| rec.owner),
            purpose: r.purpose,
            mode: r.mode,
            reason,
            consent_id,
            break_glass: reason == DecisionReason::BreakGlass,
            height: ctx.height,
            time: ctx.time,
            cohort: None,
        };
        plan.writes.push((
            StateKey::Request(request_id),
            StateValue::Request(RequestState {
                requester,
                record_id: r.record_id,
                purpose: r.purpose,
                mode: r.mode,
                granted: decision.granted(),
                decided: ctx.height,
                released: None,
            }),
        ));
        plan.decision = Some(decision);
        Ok(())
    }

    /// The decision rule. Order: the record, the requester's role, ownership, consents, then
    /// break-glass. Among consents that fail, the one that came closest names the reason.
    fn decide(
        &self,
        requester: PartyId,
        r: &RequestAccess,
        ctx: BlockContext,
    ) -> (DecisionReason, Option<ConsentId>) {
        let Some(record) = self.record(&r.record_id) else {
            return (DecisionReason::UnknownRecord, None);
        };
        if record.erased.is_some() {
            return (DecisionReason::Erased, None);
        }
        if requester == record.owner {
            return (DecisionReason::Owner, None);
        }
        let role = self.party(&requester).map(|p| p.role);
        if matches!(
            role,
            Some(Role::Auditor) | Some(Role::ValidatorOperator) | None
        ) {
            return (DecisionReason::NotAuthorized, None);
        }
        // Each failing consent gets the index of the first check it fails; later is closer.
        let mut closest: Option<(usize, DecisionReason, ConsentId)> = None;
        for (id, state) in self.consents_of(&record.owner) {
            let c = &state.consent;
            if c.grantee != requester || !c.scope.covers(&r.record_id, &record.category) {
                continue;
            }
            let failure = if state.revoked.is_some() {
                Some((0, DecisionReason::Revoked))
            } else if c.period.not_before.is_some_and(|t| ctx.time < t) {
                Some((1, DecisionReason::NotYetValid))
            } else if c.period.expires.is_some_and(|t| ctx.time >= t) {
                Some((2, DecisionReason::Expired))
            } else if !c.covers_purpose(r.purpose) {
                Some((3, DecisionReason::PurposeNotCovered))
            } else if !c.modes.contains(&r.mode) {
                Some((4, DecisionReason::ModeNotCovered))
            } else {
                None
            };
            match failure {
                None => return (DecisionReason::Consent, Some(id)),
                Some((rank, reason)) => {
                    if closest.as_ref().is_none_or(|(best, _, _)| rank > *best) {
                        closest = Some((rank, reason, id));
                    }
                }
            }
        }
        if r.purpose.is_break_glass() && r.mode == custos_types::AccessMode::Raw {
            if !self.parameters().break_glass_enabled {
                return (DecisionReason::BreakGlassDisabled, None);
            }
            if r.justification_digest.is_none() {
                return (DecisionReason::JustificationRequired, None);
            }
            if role == Some(Role::Custodian) {
                return (DecisionReason::BreakGlass, None);
            }
            return (DecisionReason::NotAuthorized, None);
        }
        match closest {
            Some((_, reason, id)) => (reason, Some(id)),
            None => (DecisionReason::NoConsent, None),
        }
    }

    fn plan_confirm(
        &self,
        author: PartyId,
        c: &ConfirmRelease,
        plan: &mut Plan,
    ) -> Result<(), TxError> {
        let request = self
            .request(&c.request_id)
            .ok_or(TxError::UnknownRequest(c.request_id))?;
        if !request.granted {
            return Err(TxError::NotAuthorized(format!(
                "request {} was denied: nothing may be released",
                c.request_id.short()
            )));
        }
        let (custodian, _) = self.holder_of(&c.request_id, request)?;
        if custodian != author {
            return Err(TxError::NotAuthorized(
                "only the record's custodian confirms a release".into(),
            ));
        }
        if request.mode != AccessMode::Aggregate
            && self
                .record(&request.record_id)
                .is_some_and(|r| r.erased.is_some())
        {
            return Err(TxError::RecordErased(request.record_id));
        }
        if request.released.is_some() {
            return Err(TxError::AlreadyReleased(c.request_id));
        }
        let mut next = request.clone();
        next.released = Some(c.release_digest);
        plan.writes
            .push((StateKey::Request(c.request_id), StateValue::Request(next)));
        Ok(())
    }

    /// A vault's refusal becomes a denied decision of its own (a fresh request id derived from
    /// the report), carrying the original request's record, patient, purpose and mode from the
    /// ledger's state, so that the access log shows it like any other denial.
    fn plan_refusal(
        &self,
        tx: &SignedTransaction,
        r: &ReportRefusal,
        ctx: BlockContext,
        plan: &mut Plan,
    ) -> Result<(), TxError> {
        if !r.reason.is_vault_refusal() {
            return Err(TxError::Invalid {
                field: "report_refusal.reason",
                reason: format!("expected a vault reason, got {}", r.reason),
            });
        }
        let request = self
            .request(&r.request_id)
            .ok_or(TxError::UnknownRequest(r.request_id))?;
        let (custodian, patient) = self.holder_of(&r.request_id, request)?;
        if custodian != tx.author() {
            return Err(TxError::NotAuthorized(
                "only the record's custodian reports its vault's refusals".into(),
            ));
        }
        let request_id = RequestId(tx.id().0);
        let decision = Decision {
            request_id,
            requester: r.requester,
            record_id: request.record_id,
            patient,
            purpose: request.purpose,
            mode: request.mode,
            reason: r.reason,
            consent_id: None,
            break_glass: false,
            height: ctx.height,
            time: ctx.time,
            cohort: None,
        };
        plan.writes.push((
            StateKey::Request(request_id),
            StateValue::Request(RequestState {
                requester: r.requester,
                record_id: request.record_id,
                purpose: request.purpose,
                mode: request.mode,
                granted: false,
                decided: ctx.height,
                released: None,
            }),
        ));
        plan.decision = Some(decision);
        Ok(())
    }

    /// Who releases for a decided request, and whose data it is: the record's custodian and
    /// owner, or for an aggregate request its cohort's custodian and no single patient.
    fn holder_of(
        &self,
        id: &RequestId,
        request: &RequestState,
    ) -> Result<(PartyId, Option<PartyId>), TxError> {
        if request.mode == AccessMode::Aggregate {
            return self.cohort(id).map(|c| (c.custodian, None)).ok_or_else(|| {
                TxError::NotAuthorized(format!(
                    "aggregate request {} was denied before its cohort was fixed",
                    id.short()
                ))
            });
        }
        let record = self
            .record(&request.record_id)
            .ok_or(TxError::UnknownRecord(request.record_id))?;
        Ok((record.custodian, Some(record.owner)))
    }

    fn plan_erase(
        &self,
        author: PartyId,
        e: &EraseRecord,
        ctx: BlockContext,
        plan: &mut Plan,
    ) -> Result<(), TxError> {
        let record = self
            .record(&e.record_id)
            .ok_or(TxError::UnknownRecord(e.record_id))?;
        if record.erased.is_some() {
            return Err(TxError::RecordErased(e.record_id));
        }
        let allowed = if e.legal_grounds {
            author == record.custodian
        } else {
            author == record.owner
        };
        if !allowed {
            return Err(TxError::NotAuthorized(if e.legal_grounds {
                "only the record's custodian erases on legal grounds".into()
            } else {
                "only the record's owner erases it (a custodian sets legal_grounds)".into()
            }));
        }
        let mut next = record.clone();
        next.erased = Some(ctx.height);
        plan.writes
            .push((StateKey::Record(e.record_id), StateValue::Record(next)));
        Ok(())
    }

    fn check_effective_height(&self, effective: Height, ctx: BlockContext) -> Result<(), TxError> {
        // Two blocks of notice: the next header already names the new set.
        if effective.0 < ctx.height.0.saturating_add(2) {
            return Err(TxError::Invalid {
                field: "governance.effective_height",
                reason: format!(
                    "must be at least {} (this block is {})",
                    ctx.height.0 + 2,
                    ctx.height.0
                ),
            });
        }
        Ok(())
    }

    fn plan_governance(
        &self,
        tx: &SignedTransaction,
        g: &Governance,
        ctx: BlockContext,
        plan: &mut Plan,
    ) -> Result<(), TxError> {
        self.require_governance(tx)?;
        match g {
            Governance::SetParameters(p) => {
                plan.writes.push((StateKey::Params, StateValue::Params(*p)));
            }
            Governance::AddValidator {
                key,
                power,
                address,
                effective_height,
            } => {
                self.check_effective_height(*effective_height, ctx)?;
                plan.writes.push((
                    StateKey::ValidatorChange(*effective_height, *key),
                    StateValue::ValidatorChange(Some((*power, address.clone()))),
                ));
            }
            Governance::RemoveValidator {
                key,
                effective_height,
            } => {
                self.check_effective_height(*effective_height, ctx)?;
                let current = self.validators();
                if !current.iter().any(|v| v.key == *key) {
                    return Err(TxError::Invalid {
                        field: "governance.remove_validator.public_key",
                        reason: format!("{} is not a validator", key.short()),
                    });
                }
                if current.len() == 1 {
                    return Err(TxError::Invalid {
                        field: "governance.remove_validator.public_key",
                        reason: "the consortium cannot remove its last validator".into(),
                    });
                }
                plan.writes.push((
                    StateKey::ValidatorChange(*effective_height, *key),
                    StateValue::ValidatorChange(None),
                ));
            }
            Governance::SetMember { party, member } => {
                let Some(state) = self.party(party) else {
                    return Err(TxError::UnknownParty {
                        field: "governance.set_member.party",
                        party: *party,
                    });
                };
                if state.role == Role::Patient {
                    return Err(TxError::Invalid {
                        field: "governance.set_member.party",
                        reason: "a patient cannot be a member organisation".into(),
                    });
                }
                if !member && self.members().len() == 1 && state.member {
                    return Err(TxError::Invalid {
                        field: "governance.set_member.member",
                        reason: "the consortium cannot remove its last member".into(),
                    });
                }
                let mut next = state.clone();
                next.member = *member;
                plan.writes
                    .push((StateKey::Party(*party), StateValue::Party(next)));
            }
            Governance::RegisterVerifyingKey { circuit, key_hash } => {
                let key = StateKey::VerifyingKey(circuit.clone());
                match key_hash {
                    Some(h) => plan.writes.push((key, StateValue::VerifyingKey(*h))),
                    None => plan.deletes.push(key),
                }
            }
        }
        Ok(())
    }
}
