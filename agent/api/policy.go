package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/edgeseal/edgeseal/agent"
	"github.com/edgeseal/edgeseal/agent/config"
	"github.com/edgeseal/edgeseal/agent/policy"
	"github.com/edgeseal/edgeseal/agent/policy/signed"
)

// CodePolicyRefused: the policy file was not put in force (not signed by
// the threshold, not a valid policy, separation of duties); the policy in
// force stays.
const CodePolicyRefused = "policy_refused"

// PolicyReloader rereads the policy file and puts it in force; the daemon
// passes its agent.PolicySource bound to the core.
type PolicyReloader func(ctx context.Context, principal string) (*agent.PolicyReload, error)

// postPolicyReload answers POST /v1/policy/reload (operator role): 200
// with the policy now in force, or 422 policy_refused.
func (s *Server) postPolicyReload(w http.ResponseWriter, r *http.Request, _ Core, p *config.Principal) {
	if s.opts.ReloadPolicy == nil {
		s.writeError(w, r, &Error{Status: http.StatusNotFound, Code: CodeNotFound, Msg: "policy reload is off"})
		return
	}
	res, err := s.opts.ReloadPolicy(r.Context(), p.Name)
	if err != nil {
		var te *signed.ThresholdError
		var de *signed.DutiesError
		var se *signed.Error
		var pe *policy.Error
		if errors.As(err, &te) || errors.As(err, &de) || errors.As(err, &se) || errors.Is(err, signed.ErrUnsigned) ||
			errors.Is(err, agent.ErrPolicyUnsignedReload) || errors.As(err, &pe) {
			s.writeError(w, r, &Error{Status: http.StatusUnprocessableEntity, Code: CodePolicyRefused, Msg: err.Error()})
			return
		}
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// ReloadPolicy asks the agent to reread its policy file (POST
// /v1/policy/reload, operator role). A refused file is a *StatusError
// with code policy_refused.
func (c *Client) ReloadPolicy(ctx context.Context) (*agent.PolicyReload, error) {
	var a agent.PolicyReload
	if _, err := c.call(ctx, Request{Method: http.MethodPost, Path: "/v1/policy/reload"}, &a, http.StatusOK); err != nil {
		return nil, err
	}
	return &a, nil
}
