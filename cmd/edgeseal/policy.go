package main

import (
	"context"
	"io"
)

// cmdPolicy dispatches the policy-admin commands: keygen, sign, verify,
// diff and history (package agent/policy/signed).
func cmdPolicy(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageErr("policy: want keygen, sign, verify, diff or history")
	}
	switch args[0] {
	case "keygen":
		return cmdPolicyKeygen(args[1:], stdout)
	case "sign":
		return cmdPolicySign(ctx, args[1:], stdout)
	case "verify":
		return cmdPolicyVerify(args[1:], stdout)
	case "diff":
		return cmdPolicyDiff(args[1:], stdout)
	case "history":
		return cmdPolicyHistory(ctx, args[1:], stdout)
	}
	return usageErr("policy: unknown %q: want keygen, sign, verify, diff or history", args[0])
}
