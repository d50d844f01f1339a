package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Token is an API bearer token as stored: its SHA-256 only, never the token itself.
type Token struct {
	// ID is a short public identifier, safe to show and to revoke by.
	ID    string
	Hash  []byte
	Name  string
	Scope string
	// Created and LastUsed; LastUsed is zero until the token is first used.
	Created, LastUsed time.Time
}

// ErrDuplicate is returned when a record with the same identity already exists.
var ErrDuplicate = errors.New("already exists")

// CreateToken stores t. A token with the same ID or hash yields ErrDuplicate.
func (s *Store) CreateToken(ctx context.Context, t Token) error {
	if t.ID == "" || len(t.Hash) == 0 {
		return errors.New("create token: no id or hash")
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_tokens WHERE id = $1 OR hash = $2`, t.ID, t.Hash).Scan(&n); err != nil {
		return fmt.Errorf("create token %s: %w", t.ID, err)
	}
	if n > 0 {
		return fmt.Errorf("create token %s: %w", t.ID, ErrDuplicate)
	}
	err := s.write(ctx, func(tx *txw) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (id, hash, name, scope, created_at, last_used_at)
			VALUES ($1, $2, $3, $4, $5, 0)`, t.ID, t.Hash, t.Name, t.Scope, t.Created.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("create token %s: %w", t.ID, err)
	}
	return nil
}

// TokenByHash returns the token whose SHA-256 is hash, or ErrNotFound.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (Token, error) {
	row := s.db.QueryRowContext(ctx, `SELECT id, hash, name, scope, created_at, last_used_at FROM api_tokens WHERE hash = $1`, hash)
	t, err := scanToken(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, ErrNotFound
	}
	if err != nil {
		return Token{}, fmt.Errorf("token lookup: %w", err)
	}
	return t, nil
}

func scanToken(scan func(...any) error) (Token, error) {
	var t Token
	var created, used int64
	if err := scan(&t.ID, &t.Hash, &t.Name, &t.Scope, &created, &used); err != nil {
		return t, err
	}
	t.Created = time.Unix(0, created)
	if used != 0 {
		t.LastUsed = time.Unix(0, used)
	}
	return t, nil
}

// TouchToken records that token id was used at when.
func (s *Store) TouchToken(ctx context.Context, id string, when time.Time) error {
	err := s.write(ctx, func(tx *txw) error {
		_, err := tx.ExecContext(ctx, `UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND last_used_at < $3`,
			when.UnixNano(), id, when.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("record use of token %s: %w", id, err)
	}
	return nil
}

// Tokens lists the stored tokens, oldest first.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, hash, name, scope, created_at, last_used_at FROM api_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("tokens: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken deletes token id; ErrNotFound when there is none.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	var n int64
	err := s.write(ctx, func(tx *txw) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM api_tokens WHERE id = $1`, id)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("revoke token %s: %w", id, ErrNotFound)
	}
	return nil
}
