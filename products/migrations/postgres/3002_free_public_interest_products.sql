-- Free public-interest products (GY ch.6): a product and an order may be priced 0 fen.
-- The rules (only the `public_interest` licence may be free; a paid product remits at
-- least the configured public-finance share) are the products crate's; this migration
-- only relaxes `price_minor > 0` to `price_minor >= 0` on `products` and `orders`.
-- (PostgreSQL counterpart of the SQLite file, which rebuilds the two tables; here the
-- CHECK constraints are replaced in place, found by their definition rather than by
-- the name PostgreSQL gave them.)
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN
        SELECT con.conname, rel.relname
        FROM pg_constraint con
        JOIN pg_class rel ON rel.oid = con.conrelid
        WHERE con.contype = 'c'
          AND con.conrelid IN ('products'::regclass, 'orders'::regclass)
          AND pg_get_constraintdef(con.oid) LIKE '%price_minor > 0%'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', c.relname, c.conname);
    END LOOP;
END
$$;
ALTER TABLE products ADD CONSTRAINT products_price_minor_check CHECK (price_minor >= 0);
ALTER TABLE orders ADD CONSTRAINT orders_price_minor_check CHECK (price_minor >= 0);
