-- Goods of a committed reservation that came back (an order cancelled after payment):
-- the reservation stays COMMITTED, returned_at records when its units went back to stock.
ALTER TABLE reservations ADD COLUMN returned_at TIMESTAMPTZ;
