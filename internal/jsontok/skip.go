package jsontok

// Skip checks the one JSON value starting at b[i] (white space inside it
// allowed, none before it) and returns the offset after it. Objects and
// arrays nest at most maxDepth deep; strings follow m.
func Skip(b []byte, i, maxDepth int, m Mode) (int, error) {
	// open holds the containers entered, '{' or '['; it stays on the
	// stack for the common shallow values.
	var stack [32]byte
	open := stack[:0]
	for {
		// A value.
		if i >= len(b) {
			return i, fail(b, i, ErrEOF)
		}
		var err error
		switch c := b[i]; {
		case c == '{' || c == '[':
			if len(open) == maxDepth {
				return i, &Error{Kind: ErrDepth, Off: i, Esc: -1}
			}
			open = append(open, c)
			i = Space(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				i++
				open = open[:len(open)-1]
				break
			}
			if c == '{' {
				if i, err = key(b, i, m); err != nil {
					return i, err
				}
			}
			continue
		case c == '"':
			i, _, err = String(b, i, m)
		case c == '-' || IsDigit(c):
			i, _, err = Number(b, i)
		default:
			i, err = Literal(b, i)
		}
		if err != nil {
			return i, err
		}
		// After a value: close containers or go on to the next element.
		for {
			if len(open) == 0 {
				return i, nil
			}
			top := open[len(open)-1]
			i = Space(b, i)
			if i >= len(b) {
				return i, fail(b, i, ErrEOF)
			}
			if b[i] == ',' {
				i = Space(b, i+1)
				if top == '{' {
					if i, err = key(b, i, m); err != nil {
						return i, err
					}
				}
				break
			}
			if b[i] != top+2 {
				return i, fail(b, i, ErrSyntax)
			}
			i++
			open = open[:len(open)-1]
		}
	}
}

// key checks an object member's name and its colon at b[i], and returns
// the offset of its value (after white space).
func key(b []byte, i int, m Mode) (int, error) {
	i, _, err := String(b, i, m)
	if err != nil {
		return i, err
	}
	if i = Space(b, i); i >= len(b) || b[i] != ':' {
		return i, fail(b, i, ErrSyntax)
	}
	return Space(b, i+1), nil
}

// End returns the end of the value starting at b[i] in input that was
// checked before (by Skip, or by a stricter reader such as a canonical
// form check): it only finds where strings and containers close, without
// checking anything else, and is the cheaper way to split checked input.
// On input that was not checked its answer means nothing, but it stays
// within b.
func End(b []byte, i int) (int, error) {
	if i >= len(b) {
		return i, fail(b, i, ErrEOF)
	}
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1, nil
			}
		}
		return len(b), fail(b, len(b), ErrEOF)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := End(b, j)
				if err != nil {
					return end, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return len(b), fail(b, len(b), ErrEOF)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
		j++
	}
	return j, nil
}
