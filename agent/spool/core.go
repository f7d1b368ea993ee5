package spool

import (
	"context"
	"errors"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/bundle/custody"
)

// CoreIngester adapts an agent.Core to Ingester (and Rejecter): the
// daemon passes CoreIngester(core) as Options.Ingester. Refusals
// (*agent.RejectedError, journaled as export.rejected) become
// *RejectError with the policy rule as Code; every other error is passed
// on as transient.
func CoreIngester(c *agent.Core) Ingester { return coreIngester{c} }

type coreIngester struct{ c *agent.Core }

func (a coreIngester) Ingest(ctx context.Context, p *config.Principal, via string, req IngestRequest) (Receipt, error) {
	rc, err := a.c.Ingest(ctx, p, via, req)
	if err != nil {
		return Receipt{}, fromAgent(err)
	}
	return rc, nil
}

func (a coreIngester) Reject(ctx context.Context, p *config.Principal, via string, req IngestRequest, cause error) (*RejectError, error) {
	actor := custody.Actor{Kind: "principal", ID: p.Name, Via: via}
	err := fromAgent(a.c.Reject(ctx, actor, req, cause))
	var rej *RejectError
	if errors.As(err, &rej) {
		return rej, nil
	}
	return nil, err
}

// fromAgent maps a *agent.RejectedError to a *RejectError; other errors
// are returned as they are.
func fromAgent(err error) error {
	var re *agent.RejectedError
	if !errors.As(err, &re) {
		return err
	}
	out := &RejectError{Code: "rejected", Message: re.Err.Error(), Journaled: true, Seq: re.Seq, Leaf: re.Leaf, Err: re}
	var (
		v   *policy.Violation
		fe  *agent.FieldError
		fb  *agent.ForbiddenError
		ic  *agent.IDConflictError
		own *RejectError
	)
	switch {
	case errors.As(re.Err, &own):
		out.Code, out.Field, out.Message = own.Code, own.Field, own.Message
	case errors.As(re.Err, &v):
		out.Code, out.Field, out.Message = string(v.Rule), v.Field, v.Message
	case errors.As(re.Err, &fe):
		out.Code, out.Field, out.Message = "bad_field", fe.Field, fe.Reason
	case errors.As(re.Err, &fb):
		out.Code = "forbidden"
	case errors.As(re.Err, &ic):
		out.Code, out.Field = "id_conflict", "id"
	}
	return out
}
