-- The pose (its index in params.poses) image `p_index` of a generation of
-- `p_images` images renders: a pose generation makes `count` images of each
-- pose in turn (images = count x poses), anything else has pose 0. The
-- worker numbers them the same way (worker/job.c); the `image` webhook
-- carries it as the `image` event does.
CREATE OR REPLACE FUNCTION farm__image_pose(p_images int, p_params jsonb, p_index int)
RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p_params -> 'poses') = 'array'
                     AND jsonb_array_length(p_params -> 'poses') > 0
                THEN p_index / greatest(p_images / jsonb_array_length(p_params -> 'poses'), 1)
                ELSE 0 END
$$;
